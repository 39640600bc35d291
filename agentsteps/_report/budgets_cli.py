"""``agentsteps budgets``: list the shared budgets a store holds, with their figures."""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from typing import IO, Any

from .._accounting.budget import NANOS_PER_USD
from ..exceptions import BudgetStoreUnavailable
from ..stores import SharedFigures

__all__ = ["add_parser", "run_budgets"]

STORE_ENV = "AGENTSTEPS_BUDGET_STORE"
"""The store ``agentsteps budgets`` reads when ``--store`` is not given."""

_EPILOG = f"""\
The store is a redis:// (or rediss://) URL, from --store or ${STORE_ENV}; it needs
pip install 'agentsteps[redis]'. One line per shared key and period the store holds:
spent / limit, and (+reserved) by calls in flight. Figures are the store's own, as every
process of the fleet charged them.

exit code: 0, or 2 when the store cannot be reached or the options are wrong."""


def add_parser(commands: Any) -> None:
    """Add the ``budgets`` command to the ``agentsteps`` sub-command parsers."""
    parser = commands.add_parser(
        "budgets",
        help="list the shared budgets in a budget store (Redis) with their figures",
        description="List the shared budgets (Budget(shared_key=...)) in a budget store.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--store", metavar="URL", help=f"redis:// URL (default: ${STORE_ENV})")
    parser.add_argument(
        "--prefix",
        default="agentsteps:budget",
        help="the keys' namespace, as given to RedisBudgetStore (default: agentsteps:budget)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON, one object per line")


def run_budgets(args: argparse.Namespace, out: IO[str], fail: type[Exception]) -> int:
    """Print the store's shared budgets to ``out``; raise ``fail`` for agentsteps' errors."""
    url = args.store or os.environ.get(STORE_ENV)
    if not url:
        msg = f"no store given: pass --store redis://HOST:PORT/DB or set ${STORE_ENV}"
        raise fail(msg)
    if not url.startswith(("redis://", "rediss://", "unix://")):
        msg = f"--store must be a redis://, rediss:// or unix:// URL (got {url!r})"
        raise fail(msg)
    try:
        from ..stores import RedisBudgetStore

        store = RedisBudgetStore(url, prefix=args.prefix, timeout=2)
    except ImportError as exc:
        msg = f"reading a Redis store needs pip install 'agentsteps[redis]' ({exc})"
        raise fail(msg) from exc
    try:
        found = store.list()
    except BudgetStoreUnavailable as exc:
        msg = f"the store {url} cannot be reached ({exc.reason})"
        raise fail(msg) from exc
    finally:
        store.client.close()
    if args.json:
        for figures in found:
            out.write(json.dumps(_as_dict(figures)) + "\n")
        return 0
    if not found:
        out.write(f"no shared budgets in {url} under {args.prefix}:*\n")
        return 0
    rows = [("KEY", "PERIOD END (UTC)", "TOKENS", "USD", "CALLS")]
    rows += [_row(f) for f in found]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for row in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        out.write("\n")
    return 0


def _end(figures: SharedFigures) -> str:
    if figures.period_end is None:
        return "never"
    return datetime.fromtimestamp(figures.period_end, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _cell(spent: int, limit: int | None, reserved: int, usd: bool = False) -> str:
    def show(value: int) -> str:
        return f"${value / NANOS_PER_USD:,.4f}" if usd else f"{value:,}"

    text = f"{show(spent)} / {'-' if limit is None else show(limit)}"
    return text + (f" (+{show(reserved)})" if reserved else "")


def _row(f: SharedFigures) -> tuple[str, str, str, str, str]:
    return (
        f.key,
        _end(f),
        _cell(f.spent.tokens, f.limits.tokens, f.reserved.tokens),
        _cell(f.spent.nanos, f.limits.nanos, f.reserved.nanos, usd=True),
        _cell(f.spent.calls, f.limits.calls, f.reserved.calls),
    )


def _as_dict(f: SharedFigures) -> dict[str, Any]:
    return {
        "key": f.key,
        "period_end": None if f.period_end is None else _end(f).replace(" ", "T") + "Z",
        "limits": {"tokens": f.limits.tokens, "nanos": f.limits.nanos, "calls": f.limits.calls},
        "spent": {"tokens": f.spent.tokens, "nanos": f.spent.nanos, "calls": f.spent.calls},
        "reserved": {
            "tokens": f.reserved.tokens,
            "nanos": f.reserved.nanos,
            "calls": f.reserved.calls,
        },
    }
