#!/usr/bin/env bash
# Build (or reuse) a private virtual environment holding the agent frameworks that
# tests/frameworks/ drives (Pydantic AI, the OpenAI Agents SDK, LangChain, LiteLLM), and print
# the path of its python on stdout (progress goes to stderr).
#
# The frameworks pin their own versions of openai, pydantic, httpx, opentelemetry, ... which
# can conflict with the main test venv's pins (opentelemetry-instrumentation-openai-v2), so
# they live in their own venv, outside the repository. The project itself is NOT installed
# there: pytest runs from the repository root, whose pyproject.toml puts "." on sys.path, so
# the venv serves any checkout and never points at a stale one. Only the project's runtime
# dependencies and pytest are installed next to the frameworks.
#
# The venv is cached: a second run reuses it in about a second; a fresh machine builds it.
#
# Environment:
#   AGENTSTEPS_FRAMEWORKS_VENV    where the venv lives
#                                 (default: ~/.cache/agentsteps/frameworks-venv)
#   AGENTSTEPS_FRAMEWORKS_SPEC    the pip requirements, space-separated (default: pinned below)
#   AGENTSTEPS_FRAMEWORKS_PYTHON  the interpreter that creates the venv (default: python3)
#
# Usage (from the repository root; .ci/run does exactly this):
#   "$(bash .ci/frameworks.sh)" -m pytest tests/frameworks -p no:cacheprovider
set -euo pipefail

venv="${AGENTSTEPS_FRAMEWORKS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/agentsteps/frameworks-venv}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
# The project's runtime dependencies, read from pyproject.toml so that they never drift from it
# (a change there rebuilds the venv: they are part of the stamp).
runtime="$(cd "$repo" && python3 -c '
import tomllib
with open("pyproject.toml", "rb") as f:
    print(" ".join(tomllib.load(f)["project"]["dependencies"]))')"
# The frameworks under test and the SDKs they call, pinned so that a new release cannot break
# CI overnight; the project's runtime dependencies, wrapt for the instrumentation, and pytest.
default_spec="pydantic-ai-slim[openai,anthropic]==2.78.0 openai-agents==0.24.0"
default_spec+=" langchain-openai==1.8.1 langchain-anthropic==1.7.10 litellm==1.110.2"
default_spec+=" openai==3.63.0 anthropic==2.17.0 wrapt>=1.16 pytest>=8 $runtime"
spec="${AGENTSTEPS_FRAMEWORKS_SPEC:-$default_spec}"
python="${AGENTSTEPS_FRAMEWORKS_PYTHON:-python3}"
stamp="$venv/.agentsteps-spec"

usable() {
    # A venv counts only if it was built for this spec and its interpreter still works (a
    # Python upgrade under it breaks it). Importing the frameworks themselves would cost 10 s.
    [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$spec" ]] &&
        "$venv/bin/python" -c "import importlib.metadata as m; m.version('pytest')" \
            >/dev/null 2>&1
}

if ! usable; then
    echo "frameworks.sh: building $venv (about 90 s and 560 MB on a fresh machine)" >&2
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
    # pip's output goes to stderr, less the mirror-configuration warnings of this machine.
    # shellcheck disable=SC2086  # the spec is a space-separated list on purpose
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $spec 2>&1 |
        { grep -v '^WARNING: Location ' || true; } >&2
    # The stamp is written last: an interrupted build has none, so the next run starts over
    # instead of trusting a half-installed venv.
    echo "$spec" >"$stamp"
    if ! usable; then
        echo "frameworks.sh: $venv/bin/python does not work after the install" >&2
        exit 1
    fi
fi

echo "$venv/bin/python"
