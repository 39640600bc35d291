"""Which SDK clients are instrumented, the patched seams, and the handle that undoes it."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Any

import attrs

from .._core.locks import new_lock

__all__ = ["InstrumentationHandle", "Options", "Registry"]

Wrapper = Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Any]


@attrs.frozen
class Options:
    """What one ``instrument_*`` call asked for."""

    limit_output: bool = False


class Registry:
    """
    One provider SDK's instrumentation state: its patched methods and who asked for them.

    The seams (one method per client class) are patched once, when the first client (or
    every client) is instrumented, and put back when the last handle is undone. The wrapper
    asks `options_for` on every call whether *this* client is instrumented, so instrumenting
    one client and then all of them never wraps a method twice.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        # Re-entrant: a client's weak reference callback (_forget) may run during add().
        self._lock = new_lock()  # fork-safe: see _core/locks.py
        self._everyone: InstrumentationHandle | None = None
        # Keyed by id(): SDK clients need not be hashable; the weak reference drops the
        # entry when the client is garbage collected.
        self._clients: dict[int, tuple[weakref.ref[Any], InstrumentationHandle]] = {}
        self._originals: list[tuple[Any, str, Any]] = []
        # Read without the lock on the hot path: a bool flip is atomic.
        self.active = False

    def options_for(self, client: object) -> Options | None:
        """The options that apply to a request made by ``client``, or None: not instrumented."""
        if self._clients:
            entry = self._clients.get(id(client))
            if entry is not None and entry[0]() is client:
                return entry[1]._options
        everyone = self._everyone
        return None if everyone is None else everyone._options

    def add(
        self,
        client: object | None,
        options: Options,
        seams: Callable[[], list[tuple[Any, str, Wrapper]]],
    ) -> InstrumentationHandle:
        """Instrument ``client`` (None: every client); the same handle if it already is."""
        with self._lock:
            if client is None:
                handle = self._everyone
                if handle is None:
                    handle = self._everyone = InstrumentationHandle(self, None, options)
            else:
                entry = self._clients.get(id(client))
                if entry is not None and entry[0]() is client:
                    handle = entry[1]
                else:
                    handle = InstrumentationHandle(self, client, options)
                    key = id(client)
                    ref = weakref.ref(client, lambda _, key=key: self._forget(key))  # type: ignore[misc]
                    self._clients[key] = (ref, handle)
            handle._options = options  # the latest call's options win
            if not self._originals:
                # wrapt comes with the provider extras; `import agentsteps` must not need it.
                import wrapt

                for owner, name, wrapper in seams():
                    self._originals.append((owner, name, owner.__dict__[name]))
                    wrapt.wrap_function_wrapper(owner, name, wrapper)
            self.active = True
            return handle

    def _forget(self, key: int) -> None:
        with self._lock:
            self._clients.pop(key, None)
            self._maybe_unpatch()

    def remove(self, handle: InstrumentationHandle) -> None:
        """Undo ``handle``; the seams are restored once no handle is left."""
        with self._lock:
            if handle is self._everyone:
                self._everyone = None
            else:
                for key, (_, other) in list(self._clients.items()):
                    if other is handle:
                        del self._clients[key]
            self._maybe_unpatch()

    def _maybe_unpatch(self) -> None:
        if self._everyone is not None or self._clients:
            return
        self.active = False
        for owner, name, original in reversed(self._originals):
            setattr(owner, name, original)
        self._originals.clear()

    def is_active(self, handle: InstrumentationHandle) -> bool:
        with self._lock:
            if handle is self._everyone:
                return True
            return any(other is handle for _, other in self._clients.values())


class InstrumentationHandle:
    """
    What `instrument_openai`, `instrument_anthropic` and `instrument_litellm` return.

    Call `uninstrument` to undo the instrumentation (the SDK's methods are restored once
    nothing else keeps them instrumented), or use the handle as a context manager: the
    ``with`` block ends it. Instrumenting the same target again returns the same handle.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("__weakref__", "_client", "_options", "_registry")

    def __init__(self, registry: Registry, client: object | None, options: Options) -> None:
        self._registry = registry
        self._client = None if client is None else weakref.ref(client)
        self._options = options

    @property
    def active(self) -> bool:
        """Whether this instrumentation is still in place."""
        return self._registry.is_active(self)

    @property
    def limit_output(self) -> bool:
        """Whether requests' max output tokens are lowered to what the budget can afford."""
        return self._options.limit_output

    def uninstrument(self) -> None:
        """Undo the instrumentation; calling it again does nothing."""
        self._registry.remove(self)

    def __enter__(self) -> InstrumentationHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.uninstrument()

    def __repr__(self) -> str:
        target = "every client" if self._client is None else "one client"
        state = "active" if self.active else "undone"
        return f"<InstrumentationHandle {self._registry.name} {target} {state}>"
