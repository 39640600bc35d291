"""
`RedisBudgetStore`: shared-budget counters in Redis, one Lua script per operation.

Cohesive: one Lua script and the store whose methods call it; the script's KEYS and ARGV
order, its reply and the Python that builds and reads them must be read side by side.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from ..exceptions import BudgetStoreUnavailable
from ._types import (
    LIMIT_NAMES,
    Amounts,
    ChargeResult,
    Limits,
    SharedFigures,
    period_ms,
    window_of,
)

__all__ = ["RedisBudgetStore"]

# One script for every operation, so each is one round trip and atomic in the server.
# KEYS: the window's hash, its set of applied charge ids, its hash of reservations.
# ARGV: op, id, reservation, tokens, nanos, calls, limit tokens, limit nanos, limit calls
# ('' = none), now ms, expire-at ms, reservation ttl ms, shared key, period end ms ('' none),
# threshold marks in basis points ('8000,9000').  A charge's reply ends with the marks it hit.
# Counters are kept with HINCRBY (exact 64-bit integers); Lua compares them as doubles,
# exact up to 2**53 (9e15 nano-dollars: $9 million per key and period).
_SCRIPT = """
local h, ids, res = KEYS[1], KEYS[2], KEYS[3]
local op, id, rid = ARGV[1], ARGV[2], ARGV[3]
local amt = {ARGV[4], ARGV[5], ARGV[6]}
local lim = {ARGV[7], ARGV[8], ARGV[9]}
local now, expire_at, rttl = tonumber(ARGV[10]), ARGV[11], tonumber(ARGV[12])
local spent_f, held_f, lim_f, cross_f = {'t', 'n', 'c'}, {'rt', 'rn', 'rc'},
  {'lt', 'ln', 'lc'}, {'xt', 'xn', 'xc'}

local function num(v) if v then return tonumber(v) else return 0 end end
-- Numbers go to Redis as exact integer strings (Lua's own format drops digits past 14,
-- and negating zero gives '-0', which HINCRBY refuses).
local function int(x) return string.format('%d', x) end

-- Reservations whose holder never settled them (a crashed worker) are given back.
local all = redis.call('HGETALL', res)
for i = 1, #all, 2 do
  local t, n, c, exp = string.match(all[i + 1], '^(%d+) (%d+) (%d+) (%d+)$')
  if tonumber(exp) <= now then
    redis.call('HDEL', res, all[i])
    redis.call('HINCRBY', h, 'rt', int(-tonumber(t)))
    redis.call('HINCRBY', h, 'rn', int(-tonumber(n)))
    redis.call('HINCRBY', h, 'rc', int(-tonumber(c)))
  end
end

local function figures(flag, extra)
  local v = redis.call('HMGET', h, 't', 'n', 'c', 'rt', 'rn', 'rc')
  return {flag, num(v[1]), num(v[2]), num(v[3]), num(v[4]), num(v[5]), num(v[6]), extra}
end

local function meta()
  for i = 1, 3 do
    if lim[i] == '' then redis.call('HDEL', h, lim_f[i])
    else redis.call('HSET', h, lim_f[i], lim[i]) end
  end
  redis.call('HSET', h, 'key', ARGV[13], 'end', ARGV[14])
  redis.call('PEXPIREAT', h, expire_at)
  redis.call('PEXPIREAT', ids, expire_at)
  redis.call('PEXPIREAT', res, expire_at)
end

if op == 'release' then
  local held = redis.call('HGET', res, id)
  if held then
    local t, n, c = string.match(held, '^(%d+) (%d+) (%d+) ')
    redis.call('HDEL', res, id)
    redis.call('HINCRBY', h, 'rt', int(-tonumber(t)))
    redis.call('HINCRBY', h, 'rn', int(-tonumber(n)))
    redis.call('HINCRBY', h, 'rc', int(-tonumber(c)))
  end
  return figures(0, '')
end

if op == 'get' then
  return redis.call('HGETALL', h)
end

if op == 'reserve' then
  local cur = redis.call('HMGET', h, 't', 'n', 'c', 'rt', 'rn', 'rc')
  for i = 1, 3 do
    if lim[i] ~= '' and num(cur[i]) + num(cur[i + 3]) + tonumber(amt[i]) > tonumber(lim[i]) then
      meta()
      return figures(0, tostring(i))
    end
  end
  redis.call('HSET', res, id, amt[1] .. ' ' .. amt[2] .. ' ' .. amt[3] .. ' ' .. int(now + rttl))
  for i = 1, 3 do redis.call('HINCRBY', h, held_f[i], amt[i]) end
  meta()
  return figures(0, '')
end

-- op == 'charge'
if redis.call('SADD', ids, id) == 0 then
  return figures(1, '')
end
if rid ~= '' then
  local held = redis.call('HGET', res, rid)
  if held then
    local left = {string.match(held, '^(%d+) (%d+) (%d+) (%d+)$')}
    for i = 1, 3 do
      local draw = math.min(tonumber(left[i]), tonumber(amt[i]))
      left[i] = int(tonumber(left[i]) - draw)
      redis.call('HINCRBY', h, held_f[i], int(-draw))
    end
    redis.call('HSET', res, rid, left[1] .. ' ' .. left[2] .. ' ' .. left[3] .. ' ' .. left[4])
  end
end
local crossed = ''
for i = 1, 3 do
  local after = redis.call('HINCRBY', h, spent_f[i], amt[i])
  if lim[i] ~= '' and after > tonumber(lim[i]) and redis.call('HSETNX', h, cross_f[i], id) == 1 then
    crossed = crossed .. tostring(i)
  end
end
local marks = ''
for m in string.gmatch(ARGV[15], '%d+') do
  local bp, hit = tonumber(m), false
  for i = 1, 3 do
    if lim[i] ~= '' then
      local l, s = tonumber(lim[i]), num(redis.call('HGET', h, spent_f[i]))
      if (l == 0 and s > 0) or (l > 0 and s * 10000 >= bp * l) then hit = true end
    end
  end
  if hit and redis.call('HSETNX', h, 'm' .. m, id) == 1 then marks = marks .. m .. ',' end
end
meta()
local reply = figures(0, crossed)
reply[9] = marks
return reply
"""

_GRACE_MS = 5 * 60 * 1000
"""Keys outlive their period by this much: late retries still find their charge ids, and
`agentsteps budgets` shows a period that just ended."""


class RedisBudgetStore:
    """
    A `BudgetStore` in Redis: one limit for every process that uses the same server.

    Every operation is one round trip running one Lua script, so charges from any number
    of processes add up exactly and each limit's crossing is reported to one charge only.
    Counters are integers (tokens, nano-dollars, calls) in one hash per key and period,
    named ``{prefix}:{{shared_key}}:{period ms}:{period start ms}`` and expiring a few
    minutes after their period ends; applied charge ids and open reservations sit beside
    it under the same expiry.

    Needs ``pip install 'agentsteps[redis]'``. Operations time out after ``timeout``
    seconds and raise `BudgetStoreUnavailable` (what happens next is the budget's
    ``on_store_error``); redis-py's own retries are turned off for clients made from a
    URL, so a dead server costs one timeout, not several.

    Args:
        url_or_client: A ``redis://`` URL, or a ``redis.Redis`` client you made (its
            timeouts and retries are then yours to set).
        prefix: Namespace of the keys.
        timeout: Socket connect and read timeout, in seconds (URL form only).
        clock: Seconds since the epoch, for periods and reservation expiry; defaults to
            `time.time`. Every process sharing a key should have the same clock, and it
            should be the real time: keys expire at the period's end by this clock, as
            the server reads it (a skew of a few minutes is absorbed by the grace).

    Charges are synchronous, also from async code (one loopback round trip is about as
    long as a context switch), because they happen inside synchronous calls
    (`record_usage`, a model call's pre-flight). A ``redis.asyncio`` client is accepted for
    its connection settings (host and port or socket path, database, credentials, TLS):
    the store talks to the same server through a synchronous client of its own.

    .. versionadded:: 0.2.0
    """

    def __init__(
        self,
        url_or_client: str | Any,
        *,
        prefix: str = "agentsteps:budget",
        timeout: float = 0.5,
        clock: Callable[[], float] | None = None,
    ) -> None:
        import redis  # here: `import agentsteps` must not need the extra

        if not isinstance(prefix, str) or not prefix:
            msg = f"RedisBudgetStore: 'prefix' must be a non-empty str (got {prefix!r})"
            raise ValueError(msg)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            msg = f"RedisBudgetStore: 'timeout' must be a number of seconds > 0 (got {timeout!r})"
            raise ValueError(msg)
        if isinstance(url_or_client, str):
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            self._url: str | None = url_or_client
            client = redis.Redis.from_url(
                url_or_client,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0),
                retry_on_timeout=False,
            )
        elif isinstance(url_or_client, redis.Redis):
            self._url = None
            client = url_or_client
        elif _is_asyncio_client(url_or_client):
            self._url = None
            client = _sync_twin(url_or_client, timeout)
        else:
            msg = (
                "RedisBudgetStore: 'url_or_client' must be a redis:// URL, a redis.Redis "
                "client or a redis.asyncio.Redis client "
                f"(got {url_or_client!r} of type {type(url_or_client).__name__})"
            )
            raise TypeError(msg)
        self._client = client
        self._prefix = prefix
        self._clock: Callable[[], float] = time.time if clock is None else clock
        self._script = client.register_script(_SCRIPT)
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)

    def __repr__(self) -> str:
        where = self._url if self._url is not None else repr(self._client)
        return f"RedisBudgetStore({where!r})"

    @property
    def client(self) -> Any:
        """The ``redis.Redis`` client."""
        return self._client

    def now(self) -> float:
        """The store's clock, in seconds since the epoch."""
        return self._clock()

    def _keys(self, key: str, period: timedelta | None, at: float) -> tuple[list[str], int | None]:
        start, end = window_of(at, period)
        base = f"{self._prefix}:{{{key}}}:{'ever' if period is None else period_ms(period)}:{start}"
        return [base, base + ":ids", base + ":res"], end

    def _run(
        self,
        key: str,
        period: timedelta | None,
        op: str,
        *,
        ident: str = "",
        reservation: str = "",
        limits: Limits | None = None,
        amounts: Amounts | None = None,
        at: float | None = None,
        ttl_ms: int = 0,
        marks: tuple[int, ...] = (),
    ) -> tuple[list[Any], int | None]:
        now = self._clock()
        keys, end = self._keys(key, period, now if at is None else at)
        now_ms = int(now * 1000)
        # A budget for ever: its keys are refreshed by every charge, and kept a year past
        # the last one.
        expire_at = now_ms + 366 * 86_400_000 if end is None else max(end, now_ms) + _GRACE_MS
        lim = ("", "", "") if limits is None else limits.as_tuple()
        amt = (0, 0, 0) if amounts is None else amounts.as_tuple()
        args = [
            op,
            ident,
            reservation,
            *amt,
            *("" if v is None else v for v in lim),
            now_ms,
            expire_at,
            ttl_ms,
            key,
            "" if end is None else end,
            ",".join(map(str, marks)),
        ]
        try:
            reply = self._script(keys=keys, args=args)
        except self._errors as exc:
            raise self._unavailable(exc, key) from exc
        return reply, end

    def _unavailable(self, exc: BaseException, key: str = "*") -> BudgetStoreUnavailable:
        return BudgetStoreUnavailable(key, repr(self), f"{type(exc).__name__}: {exc}")

    def _result(
        self, key: str, limits: Limits, reply: list[Any], end: int | None
    ) -> tuple[SharedFigures, bool, str]:
        flag, t, n, c, rt, rn, rc, extra = reply[:8]
        extra = extra.decode() if isinstance(extra, bytes) else str(extra)
        figures = SharedFigures(
            key=key,
            limits=limits,
            spent=Amounts(int(t), int(n), int(c)),
            reserved=Amounts(int(rt), int(rn), int(rc)),
            period_end=None if end is None else end / 1000,
        )
        return figures, bool(flag), extra

    def charge(
        self,
        key: str,
        period: timedelta | None,
        limits: Limits,
        amounts: Amounts,
        *,
        charge_id: str,
        at: float | None = None,
        reservation: str | None = None,
        marks: tuple[int, ...] = (),
    ) -> ChargeResult:
        """Add ``amounts`` under ``key`` once per ``charge_id`` (see `BudgetStore.charge`)."""
        reply, end = self._run(
            key,
            period,
            "charge",
            ident=charge_id,
            reservation=reservation or "",
            limits=limits,
            amounts=amounts,
            at=at,
            marks=marks,
        )
        figures, duplicate, crossed = self._result(key, limits, reply, end)
        names = tuple(LIMIT_NAMES[int(i) - 1] for i in crossed)
        hit = reply[8] if len(reply) > 8 else b""
        hit = hit.decode() if isinstance(hit, bytes) else str(hit)
        reached = tuple(int(m) for m in hit.split(",") if m)
        return ChargeResult(figures, crossed=names, duplicate=duplicate, marks=reached)

    def reserve(
        self,
        key: str,
        period: timedelta | None,
        limits: Limits,
        amounts: Amounts,
        *,
        reservation: str,
        ttl: timedelta,
    ) -> ChargeResult:
        """Hold ``amounts`` if they fit every limit (see `BudgetStore.reserve`)."""
        reply, end = self._run(
            key,
            period,
            "reserve",
            ident=reservation,
            limits=limits,
            amounts=amounts,
            ttl_ms=ttl // timedelta(milliseconds=1),
        )
        figures, _, refused = self._result(key, limits, reply, end)
        if refused:
            return ChargeResult(figures, granted=False, refused_limit=LIMIT_NAMES[int(refused) - 1])
        return ChargeResult(figures)

    def release(self, key: str, period: timedelta | None, reservation: str) -> None:
        """Give back what is left of a reservation (see `BudgetStore.release`)."""
        self._run(key, period, "release", ident=reservation)

    def get(self, key: str, period: timedelta | None = None) -> SharedFigures | None:
        """The key's figures in its current period, or ``None`` when nothing was charged."""
        reply, _ = self._run(key, period, "get")
        return _parse(dict(zip(reply[::2], reply[1::2], strict=True)))

    def _read(self, name: str) -> SharedFigures | None:
        try:
            raw = self._client.hgetall(name)
        except self._errors as exc:
            raise self._unavailable(exc) from exc
        return _parse(raw)

    def list(self) -> list[SharedFigures]:
        """
        Every key's figures in the periods the store still holds, by key.

        Reads the hashes as they are (expired reservations are given back at the key's
        next operation).
        """
        found = []
        try:
            names = list(self._client.scan_iter(match=f"{self._prefix}:*", count=500))
        except self._errors as exc:
            raise self._unavailable(exc) from exc
        for raw in names:
            name = raw.decode() if isinstance(raw, bytes) else raw
            if name.endswith((":ids", ":res")):
                continue
            figures = self._read(name)
            if figures is not None:
                found.append(figures)
        return sorted(found, key=lambda f: (f.key, f.period_end or 0))


def _parse(raw: dict[Any, Any]) -> SharedFigures | None:
    """A window's hash as figures (``None``: the hash does not exist)."""
    if not raw:
        return None
    data = {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in raw.items()
    }

    def num(field: str) -> int:
        return int(data.get(field) or 0)

    def limit(field: str) -> int | None:
        value = data.get(field)
        return None if value in (None, "") else int(value)

    end = data.get("end") or ""
    return SharedFigures(
        key=data.get("key", ""),
        limits=Limits(limit("lt"), limit("ln"), limit("lc")),
        spent=Amounts(num("t"), num("n"), num("c")),
        reserved=Amounts(num("rt"), num("rn"), num("rc")),
        period_end=int(end) / 1000 if end else None,
    )


RedisBudgetStore.__module__ = "agentsteps.stores"


def _is_asyncio_client(obj: object) -> bool:
    try:
        import redis.asyncio
    except ImportError:  # pragma: no cover - redis-py without asyncio support
        return False
    return isinstance(obj, redis.asyncio.Redis)


# What a synchronous client may take from an asyncio client's connection settings. The rest
# (its retry object, event-loop-bound handlers) belongs to asyncio and is not carried over.
_CARRIED = ("host", "port", "db", "username", "password", "credential_provider", "client_name")


def _sync_twin(client: Any, timeout: float) -> Any:
    """A synchronous client to the server an asyncio client talks to."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    pool = client.connection_pool
    settings = pool.connection_kwargs
    kwargs: dict[str, Any] = {k: settings[k] for k in _CARRIED if k in settings}
    if "path" in settings:
        kwargs["unix_socket_path"] = settings["path"]
    if pool.connection_class.__name__ == "SSLConnection":
        kwargs["ssl"] = True
        kwargs.update({k: v for k, v in settings.items() if k.startswith("ssl_")})
    return redis.Redis(
        **kwargs,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),  # no retries: a store away is handled by the policy
    )
