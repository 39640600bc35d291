"""Named development sessions: tests, lint, typecheck (and more as the project grows)."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = ["3.11"]
# The test suite runs on every supported Python that is installed (others are skipped).
SUPPORTED = ["3.11", "3.12", "3.13"]
nox.options.error_on_missing_interpreters = False


@nox.session(python=SUPPORTED)
def tests(session: nox.Session) -> None:
    """Run the test suite (doctests in the package included)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff")
    session.run(
        "ruff",
        "check",
        "agentsteps",
        "tests",
        "examples",
        "benchmarks",
        "docs/_tools",
        "noxfile.py",
    )
    session.run(
        "ruff", "format", "--check", "agentsteps", "tests", "examples", "benchmarks", "noxfile.py"
    )


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package, and on the typed-usage checks."""
    session.install("-e", ".[test]", "mypy")
    session.run("mypy", "--strict", "agentsteps")
    session.run("mypy", "--strict", "tests/typing")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """
    Measure @step against raw OpenTelemetry and the peer decorators (traceloop-sdk,
    Langfuse, Logfire), all kept on this machine. Arguments after ``--`` go to
    ``benchmarks/bench.py``: ``nox -s bench -- --quick``, ``-- --write-results``.
    """
    # The venv's bundled pip gives up on the peers' OpenTelemetry pins; a current one solves them.
    session.install("--upgrade", "pip")
    session.install("-e", ".[bench]")
    session.run("python", "benchmarks/bench.py", *session.posargs)


@nox.session(python=PYTHON)
def bench_compare(session: nox.Session) -> None:
    """
    Old against new: the hot-path ratios of a base ref and this checkout, one harness,
    alternating processes (benchmarks/compare.py, issue 18's "no regression" check).
    ``nox -s bench_compare -- --base 4adfa33``; add ``--quick`` or ``--write-results``.
    """
    # Core dependencies only: no peers. Both trees import under these versions.
    session.install("-e", ".")
    session.run("python", "benchmarks/compare.py", *session.posargs)


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation site; --strict turns a broken link or reference into an error."""
    session.install("-e", ".[docs]")
    site = session.posargs[0] if session.posargs else "site"
    session.run("mkdocs", "build", "--strict", "--site-dir", site, env={"NO_MKDOCS_2_WARNING": "1"})
