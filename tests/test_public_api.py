"""The public surface: __all__ matches the exports and every public name is documented."""

from __future__ import annotations

import inspect

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
