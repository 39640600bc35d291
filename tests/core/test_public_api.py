"""The public surface: __all__ matches the exports and every public name is documented."""

from __future__ import annotations

import inspect

import pytest

import agentsteps


def test_all_matches_exports() -> None:
    """__all__ lists exactly the public names of the package, sorted."""
    public = {n for n in dir(agentsteps) if not n.startswith("_")}
    modules = {n for n in public if inspect.ismodule(getattr(agentsteps, n))}
    assert set(agentsteps.__all__) == (public - modules) | {"__version__"}
    assert list(agentsteps.__all__) == sorted(agentsteps.__all__)


def test_every_public_name_has_a_docstring() -> None:
    """Every exported class and function carries a docstring."""
    missing = [
        name
        for name in agentsteps.__all__
        if name != "__version__" and not inspect.getdoc(getattr(agentsteps, name))
    ]
    assert missing == []


def test_public_objects_claim_the_package() -> None:
    """Public classes and functions report agentsteps as their module (clean tracebacks)."""
    wrong = [
        name
        for name in agentsteps.__all__
        if name != "__version__"
        and getattr(getattr(agentsteps, name), "__module__", "agentsteps") != "agentsteps"
    ]
    assert wrong == []


def test_py_typed_is_shipped() -> None:
    """The package marks itself as typed."""
    from importlib.resources import files

    assert files("agentsteps").joinpath("py.typed").is_file()


def test_import_uses_the_api_only() -> None:
    """`import agentsteps` does not load the OpenTelemetry SDK; the names that need it
    load it when first used."""
    import subprocess
    import sys

    code = (
        "import sys, agentsteps\n"
        "before = any(m.startswith('opentelemetry.sdk') for m in sys.modules)\n"
        "agentsteps.JsonlSpanExporter\n"
        "after = any(m.startswith('opentelemetry.sdk') for m in sys.modules)\n"
        "print(before, after)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "True"]


def test_unknown_attribute() -> None:
    """A name the package does not have is an ordinary AttributeError."""
    with pytest.raises(AttributeError, match="module 'agentsteps' has no attribute 'stepz'"):
        agentsteps.stepz  # type: ignore[attr-defined]  # noqa: B018


def test_fixup_module_metadata() -> None:
    """The one fixup pass renames public objects from private modules, and nothing else."""

    def configure_tracing() -> None:
        """Stands in for a lazily loaded public name."""

    def helper() -> None:
        """Not in __all__: left alone."""

    configure_tracing.__module__ = "agentsteps._tracing.setup"
    helper.__module__ = "agentsteps._tracing.setup"
    agentsteps._fixup_module_metadata({"configure_tracing": configure_tracing, "helper": helper})
    assert configure_tracing.__module__ == "agentsteps"
    assert helper.__module__ == "agentsteps._tracing.setup"
