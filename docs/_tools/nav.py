"""
MkDocs hook: keep the navigation in step with the pages that exist.

Feature pages arrive from several branches. ``mkdocs.yml`` lists them all ahead of time;
this hook drops the entries whose file is not in ``docs/`` yet, turns links to those
planned-but-missing pages into plain text (so a page may mention one before it lands), and
appends any page the list forgot under "More", so every page is reachable. Likewise
``api.md`` places the public names by topic, and any name of ``agentsteps.__all__`` it does
not mention yet (a feature that landed since) is appended to it under "More". A link to a page
that is neither present nor planned is still a broken link, and ``--strict`` fails on it.
"""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path
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
    """Plain-text links to planned pages not written yet; complete the API page."""
    if page.file.src_uri == _API_PAGE:
        markdown = _complete_api_page(markdown, config)
    if not _missing:
        return markdown

    def replace(match: re.Match[str]) -> str:
        target = match.group(2).removeprefix("./")
        return match.group(1) if target in _missing else match.group(0)

    return _LINK.sub(replace, markdown)


_API_PAGE = "api.md"
_DIRECTIVE = re.compile(r"^:::\s*agentsteps\.(\w+)\s*$", re.M)


def _public_names(package_init: Path) -> list[str]:
    """The names in ``__all__`` of the package, read without importing it."""
    tree = ast.parse(package_init.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return [ast.literal_eval(e) for e in node.value.elts]  # type: ignore[attr-defined]
    return []


def _complete_api_page(markdown: str, config: Any) -> str:
    """Append every public name the API page does not place yet, so none goes missing."""
    root = Path(config["config_file_path"]).parent
    documented = set(_DIRECTIVE.findall(markdown))
    missing = [
        name
        for name in _public_names(root / "agentsteps" / "__init__.py")
        if name not in documented and not name.startswith("_")
    ]
    if not missing:
        return markdown
    log.info("API reference: public names not placed in a section yet: %s", ", ".join(missing))
    return markdown + "\n## More\n\n" + "".join(f"::: agentsteps.{n}\n" for n in missing)
