#!/usr/bin/env bash
# Build (or reuse) the Jaeger v2 all-in-one binary from the Go module proxy and print its path
# on stdout (progress goes to stderr).
#
# No Docker engine runs on our machines and no Python, npm or Debian package ships Jaeger, but
# Jaeger v2 is a Go program, so we build `cmd/jaeger` of the module
# github.com/jaegertracing/jaeger at a pinned tag in a throwaway Go module. The binary is cached
# outside the repository; a second run reuses it in well under a second.
#
# Cost on a fresh machine (2 shared cores, Go 1.26, measured 2026-12-06): the first build takes
# about 4.5 minutes (4 min 18 s: ~3 min for `go get` to download 324 modules, the rest compiling
# and linking) and fills the Go module cache with about 1.3 GB (GOMODCACHE, default
# ~/go/pkg/mod) plus about 1.6 GB of build cache (GOCACHE, default ~/.cache/go-build); the
# binary itself is about 116 MB. With both caches warm, a rebuild (e.g. after deleting the
# binary) only links: well under a minute. Plan for 3 GB of free disk.
#
# The binary serves the OTLP receivers and the query API (/api/v3) in full. Its web UI is a
# placeholder page: Jaeger's release builds embed the separately built jaeger-ui assets, which
# the Go module does not carry. docs/jaeger.md says how to point it at a jaeger-ui build.
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
        # The version stamp is what `jaeger version` and the UI's "About" report; release
        # builds set it the same way.
        go build -o "$dir/jaeger.tmp" \
            -ldflags "-X github.com/jaegertracing/jaeger/internal/version.latestVersion=$version" \
            github.com/jaegertracing/jaeger/cmd/jaeger >&2 2>&1
    )
    mv "$dir/jaeger.tmp" "$bin"
    if ! usable; then
        echo "jaeger.sh: $bin does not run after the build" >&2
        exit 1
    fi
fi

echo "$bin"
