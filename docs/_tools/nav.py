"""
MkDocs hook: keep the navigation in step with the pages that exist.

Feature pages arrive from several branches. ``mkdocs.yml`` lists them all ahead of time;
this hook drops the entries whose file is not in ``docs/`` yet, turns links to those
planned-but-missing pages into plain text (so a page may mention one before it lands), and
appends any page the list forgot under "More", so every page is reachable. A link to a page
that is neither present nor planned is still a broken link, and ``--strict`` fails on it.
"""

from __future__ import annotations

import logging
import re
from typing import Any

log = logging.getLogger("mkdocs.hooks.nav")

_missing: set[str] = set()


def _prune(items: list[Any], present: set[str], listed: set[str]) -> list[Any]:
    kept: list[Any] = []
    for item in items:
        if isinstance(item, dict):
            ((title, value),) = item.items()
            if isinstance(value, list):
                children = _prune(value, present, listed)
                if children:
                    kept.append({title: children})
                continue
            target = value
        else:
            target = item
        if not isinstance(target, str) or "://" in target:
            kept.append(item)
            continue
        listed.add(target)
        if target in present:
            kept.append(item)
        else:
            _missing.add(target)
    return kept


def on_files(files: Any, config: Any) -> Any:
    """Prune the nav to the pages present; append the ones it does not list."""
    present = {f.src_uri for f in files.documentation_pages()}
    listed: set[str] = set()
    _missing.clear()
    nav = _prune(list(config["nav"] or []), present, listed)
    unlisted = sorted(present - listed)
    if unlisted:
        log.info("pages not in mkdocs.yml nav, listed under 'More': %s", ", ".join(unlisted))
        nav.append({"More": unlisted})
    if _missing:
        log.info("planned pages not written yet: %s", ", ".join(sorted(_missing)))
    config["nav"] = nav
    return files


_LINK = re.compile(r"\[([^\]]+)\]\(([\w./-]+\.md)(#[\w-]*)?\)")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Write links to planned pages that do not exist yet as their plain text."""
    if not _missing:
        return markdown

    def replace(match: re.Match[str]) -> str:
        target = match.group(2).removeprefix("./")
        return match.group(1) if target in _missing else match.group(0)

    return _LINK.sub(replace, markdown)
