#!/usr/bin/env bash
# Build (or reuse) the Jaeger v2 all-in-one binary from the Go module proxy and print its path
# on stdout (progress goes to stderr).
#
# No Docker engine runs on our machines and no Python, npm or Debian package ships Jaeger, but
# Jaeger v2 is a Go program, so we build `cmd/jaeger` of the module
# github.com/jaegertracing/jaeger at a pinned tag in a throwaway Go module. The binary is cached
# outside the repository; a second run reuses it in well under a second.
#
# Cost on a fresh machine (2 cores): the first build takes about FIRST_BUILD_MINUTES minutes
# and fills the Go module cache with about MODCACHE_SIZE (GOMODCACHE, default ~/go/pkg/mod) plus
# about BUILDCACHE_SIZE of build cache (~/.cache/go-build); the binary itself is about BINARY_SIZE.
#
# Environment:
#   AGENTSTEPS_JAEGER_VERSION  the module version to build (default v1.75.0, the approved tag)
#   AGENTSTEPS_JAEGER_DIR      where the binary is cached
#                              (default: ~/.cache/agentsteps/jaeger-$AGENTSTEPS_JAEGER_VERSION)
#
# Usage from .ci/run:
#   AGENTSTEPS_JAEGER_BIN="$(bash .ci/jaeger.sh)"; export AGENTSTEPS_JAEGER_BIN
set -euo pipefail

version="${AGENTSTEPS_JAEGER_VERSION:-v1.75.0}"
dir="${AGENTSTEPS_JAEGER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/agentsteps/jaeger-$version}"
bin="$dir/jaeger"

usable() {
    [[ -x "$bin" ]] && "$bin" version >/dev/null 2>&1
}

if ! usable; then
    command -v go >/dev/null 2>&1 || {
        echo "jaeger.sh: Go is not installed; Jaeger v2 is built from its Go module" >&2
        exit 1
    }
    echo "jaeger.sh: building Jaeger $version into $dir (slow the first time)" >&2
    mkdir -p "$dir"
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    (
        cd "$work"
        export GOFLAGS=-mod=mod
        # The module's go.mod may ask for a newer toolchain than the installed Go; let Go
        # use the installed one when it is new enough rather than download another.
        export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
        go mod init agentsteps.local/jaegerbuild >&2 2>&1
        go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$version" >&2 2>&1
        # Write to a temporary name first: an interrupted build leaves no half-written binary
        # that `usable` would trust next time.
        go build -o "$dir/jaeger.tmp" github.com/jaegertracing/jaeger/cmd/jaeger >&2 2>&1
    )
    mv "$dir/jaeger.tmp" "$bin"
    if ! usable; then
        echo "jaeger.sh: $bin does not run after the build" >&2
        exit 1
    fi
fi

echo "$bin"
