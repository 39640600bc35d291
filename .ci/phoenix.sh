#!/usr/bin/env bash
# Build (or reuse) a private virtual environment holding Arize Phoenix, a real OTLP backend,
# and print the path of its `phoenix` executable on stdout (progress goes to stderr).
#
# Phoenix pins pandas, pyarrow, grpcio, protobuf, ... so it lives in its own venv, outside the
# repository, and never shares a package with the project's environment. The venv is cached:
# a second run reuses it in about a second; a fresh machine builds it (about 70 s, 850 MB).
#
# Environment:
#   AGENTSTEPS_PHOENIX_VENV  where the venv lives (default: ~/.cache/agentsteps/phoenix-venv)
#   AGENTSTEPS_PHOENIX_SPEC  the pip requirement to install (default: the pinned version below)
#   AGENTSTEPS_PHOENIX_PYTHON  the interpreter that creates the venv (default: python3)
#
# Usage from .ci/run:
#   AGENTSTEPS_PHOENIX_BIN="$(bash .ci/phoenix.sh)"; export AGENTSTEPS_PHOENIX_BIN
set -euo pipefail

venv="${AGENTSTEPS_PHOENIX_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/agentsteps/phoenix-venv}"
spec="${AGENTSTEPS_PHOENIX_SPEC:-arize-phoenix==20.26.1}"
python="${AGENTSTEPS_PHOENIX_PYTHON:-python3}"
stamp="$venv/.agentsteps-spec"

usable() {
    # A venv counts only if it was built for this spec and its interpreter still works
    # (a Python upgrade under it breaks it). Importing phoenix itself would cost 10 s.
    [[ -x "$venv/bin/phoenix" && -f "$stamp" && "$(cat "$stamp")" == "$spec" ]] &&
        "$venv/bin/python" -c "import importlib.metadata as m; m.version('arize-phoenix')" \
            >/dev/null 2>&1
}

if ! usable; then
    echo "phoenix.sh: building $venv with $spec (about a minute on a fresh machine)" >&2
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
    # pip's output goes to stderr, less the mirror-configuration warnings of this machine.
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$spec" 2>&1 |
        { grep -v '^WARNING: Location ' || true; } >&2
    # The stamp is written last: an interrupted build has none, so the next run starts over
    # instead of trusting a half-installed venv.
    echo "$spec" >"$stamp"
    if ! usable; then
        echo "phoenix.sh: $venv/bin/phoenix does not work after the install" >&2
        exit 1
    fi
fi

echo "$venv/bin/phoenix"
