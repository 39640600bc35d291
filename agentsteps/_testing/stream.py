"""A streamed `ScriptedModel` answer: chunks charged one by one, sync or async."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from types import TracebackType
from typing import Protocol

from .._accounting.rates import Price
from .._llm.call import LLMCall
from .replies import Reply, price_reply, record_reply
from .tokens import Message

__all__ = ["ScriptedStream", "StreamSource"]


class StreamSource(Protocol):
    """What a stream needs of its `ScriptedModel`: open the call, answer, prices, latency."""

    prices: Mapping[str, Price]
    latency: float

    def _call(
        self, messages: tuple[Message, ...], model: str, max_output_tokens: int | None
    ) -> LLMCall: ...

    def _answer(
        self, messages: tuple[Message, ...], model: str, max_output_tokens: int | None
    ) -> Reply: ...


_CHUNK = re.compile(r"\s*\S+\s*|\s+")


class ScriptedStream(Iterator[str], AsyncIterator[str]):
    """
    A streamed `ScriptedModel` answer: iterate for text chunks; ``reply`` once it ended.

    From `ScriptedModel.stream` iterate it with ``for`` (and ``with``); from
    `ScriptedModel.astream` with ``async for`` (and ``async with``). The call opens with
    the first chunk asked for, and each chunk is charged before it is handed on, so a
    budget stops the stream at the chunk that crosses it (that chunk is not delivered).
    Leaving the block early closes the stream, charged what was delivered.
    """

    def __init__(
        self,
        model: StreamSource,
        messages: tuple[Message, ...],
        model_name: str,
        max_output_tokens: int | None,
        *,
        is_async: bool = False,
    ) -> None:
        self._model = model
        self._messages = messages
        self._model_name = model_name
        self._max = max_output_tokens
        self._async = is_async
        self._call: LLMCall | None = None
        self._chunks: list[str] | None = None
        self._full: Reply | None = None
        self._delivered: list[str] = []
        self.reply: Reply | None = None
        """The answer as charged, once the stream ended (``None`` before)."""

    @property
    def text(self) -> str:
        """The text delivered so far."""
        return "".join(self._delivered)

    def _open(self) -> None:
        """Open the call (pre-flight budget check) and get the scripted answer."""
        call = self._model._call(self._messages, self._model_name, self._max)
        call.__enter__()
        self._call = call
        try:
            self._full = self._model._answer(self._messages, self._model_name, self._max)
        except BaseException as exc:
            self._end(exc)
            raise
        self._chunks = _CHUNK.findall(self._full.text)

    def _next_chunk(self) -> str | None:
        if self.reply is not None:
            return None
        if self._chunks is None:
            self._open()
        chunks, call, full = self._chunks, self._call, self._full
        assert chunks is not None
        assert call is not None
        assert full is not None
        if len(self._delivered) == len(chunks):
            if not chunks:
                record_reply(call, full)
            self._end(None)
            return None
        chunk = chunks[len(self._delivered)]
        # Charge the answer so far, this chunk included, before handing the chunk on.
        so_far = self._partial(self.text + chunk)
        try:
            record_reply(call, so_far)
        except BaseException as exc:
            self._end(exc)
            raise
        self._delivered.append(chunk)
        return chunk

    def _partial(self, text: str) -> Reply:
        full = self._full
        assert full is not None
        if text == full.text:
            return full
        return price_reply(
            self._model.prices,
            text,
            full.model,
            full.input_tokens,
            full.cache_read_tokens,
            full.finish_reason,
        )

    def _end(self, exc: BaseException | None) -> None:
        call, self._call = self._call, None
        self.reply = self._partial(self.text) if self._full is not None else None
        if call is not None:
            call.__exit__(None if exc is None else type(exc), exc, None)

    def __iter__(self) -> ScriptedStream:
        return self

    def __next__(self) -> str:
        if self._async:
            msg = "this stream came from astream(): iterate it with 'async for'"
            raise TypeError(msg)
        if self._chunks is None and self.reply is None and self._model.latency:
            time.sleep(self._model.latency)
        chunk = self._next_chunk()
        if chunk is None:
            raise StopIteration
        return chunk

    def __aiter__(self) -> ScriptedStream:
        return self

    async def __anext__(self) -> str:
        if not self._async:
            msg = "this stream came from stream(): iterate it with 'for'"
            raise TypeError(msg)
        if self._chunks is None and self.reply is None and self._model.latency:
            await asyncio.sleep(self._model.latency)
        else:
            await asyncio.sleep(0)  # let other tasks run between chunks, like a network
        chunk = self._next_chunk()
        if chunk is None:
            raise StopAsyncIteration
        return chunk

    def close(self) -> None:
        """Stop early: the call ends charged for the chunks delivered so far."""
        if self._call is not None:
            self._end(None)

    async def aclose(self) -> None:
        """The async form of `close`."""
        self.close()

    def __enter__(self) -> ScriptedStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> ScriptedStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
