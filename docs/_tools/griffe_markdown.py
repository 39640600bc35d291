"""
Griffe extension: render our docstrings' reStructuredText habits as Markdown.

The package's docstrings follow attrs and structlog: public API is tagged with
``.. versionadded:: X`` and examples are bare doctests (``>>>``), which the test suite
runs. The API reference renders docstrings as Markdown, where the directive would show
verbatim and ``>>>`` would start a block quote. This extension rewrites, in memory only:

- each version directive into a short "*Added in version X.*" line;
- each doctest run into a fenced ``pycon`` block (dedented out of a paragraph's
  indented literal block, whose ``::`` becomes ``:``), and any other literal block
  (``text::`` and an indented block) into a fenced ``python`` block;
- reStructuredText simple tables (``====  ====`` borders) into Markdown tables;
- class bases that are private (``_Frame``) out of the "Bases:" line.

It also hides the constructor of classes that users receive but never build.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_DIRECTIVE = re.compile(
    r"^([ \t]*)\.\. (versionadded|versionchanged|deprecated):: *(\S+)[ \t]*$", re.M
)
_WORDS = {"versionadded": "Added", "versionchanged": "Changed", "deprecated": "Deprecated"}
_SECTION = re.compile(r"^\s*[A-Z][\w ]*:\s*$")
# Handed out by the library (current_step(), run()), never constructed by user code.
_NO_CONSTRUCTOR = {"ActivePersona", "ActiveStep", "Run"}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _fence_doctests(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.lstrip().startswith(">>>"):
            out.append(line)
            i += 1
            continue
        # A doctest runs until the next blank line.
        j = i
        while j < len(lines) and lines[j].strip():
            j += 1
        block = lines[i:j]
        ind = _indent(line)
        prev = next((k for k in range(len(out) - 1, -1, -1) if out[k].strip()), None)
        if prev is not None and _SECTION.match(out[prev]) and _indent(out[prev]) < ind:
            keep = ind  # a Google section body: griffe dedents it, keep it as it is
        else:
            keep = 0 if prev is None else min(ind, _indent(out[prev]))
            if prev is not None and out[prev].rstrip().endswith("::"):
                out[prev] = out[prev].rstrip()[:-1]
        pad = " " * keep
        out.append(f"{pad}```pycon")
        out.extend(pad + b[ind:] if b[:ind].strip() == "" else b for b in block)
        out.append(f"{pad}```")
        i = j
    return "\n".join(out)


_BORDER = re.compile(r"^( *)(=+(?: +=+)+) *$")


def _rst_tables(text: str) -> str:
    """Turn reStructuredText simple tables (``===  ===`` borders) into Markdown tables."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        top = _BORDER.match(lines[i])
        # A simple table: border, header row(s), border, rows, border.
        borders = [i] if top else []
        if top:
            k = i + 1
            while k < len(lines) and len(borders) < 3 and lines[k].strip():
                if _BORDER.match(lines[k]):
                    borders.append(k)
                k += 1
        if len(borders) < 3:
            out.append(lines[i])
            i += 1
            continue
        indent = top.group(1)  # type: ignore[union-attr]
        spans = [(m.start(), m.end()) for m in re.finditer(r"=+", lines[i])]

        def cells(row: str, spans: list[tuple[int, int]] = spans) -> list[str]:
            bounds = [start for start, _ in spans] + [len(row) + 1]
            return [row[bounds[c] : bounds[c + 1]].strip() for c in range(len(spans))]

        header = [cells(r) for r in lines[borders[0] + 1 : borders[1]]]
        body = [cells(r) for r in lines[borders[1] + 1 : borders[2]]]
        head = [" ".join(col).strip() for col in zip(*header, strict=True)]
        out.append(indent + "| " + " | ".join(head) + " |")
        out.append(indent + "|" + " --- |" * len(head))
        out.extend(indent + "| " + " | ".join(row) + " |" for row in body)
        i = borders[2] + 1
    return "\n".join(out)


_LITERAL = re.compile(r"::\n\n((?:(?: {4,}.*)?\n)+)", re.M)


def _literal_blocks(text: str) -> str:
    """Turn ``text::`` plus an indented block (reST literal) into ``text:`` plus a fence."""

    def fence(match: re.Match[str]) -> str:
        block = match.group(1).rstrip("\n")
        lines = block.split("\n")
        ind = min(len(x) - len(x.lstrip()) for x in lines if x.strip())
        body = "\n".join(x[ind:] for x in lines)
        return f":\n\n```python\n{body}\n```\n\n"

    return _LITERAL.sub(fence, text)


def _rewrite(text: str) -> str:
    if ".. " in text:
        text = _DIRECTIVE.sub(
            lambda m: f"{m.group(1)}*{_WORDS[m.group(2)]} in version {m.group(3)}.*", text
        )
    if ">>>" in text:
        text = _fence_doctests(text)
    if "::\n\n" in text:
        text = _literal_blocks(text)
    if "==" in text:
        text = _rst_tables(text)
    return text


class MarkdownDocstrings(griffe.Extension):
    """Rewrite every docstring griffe loads; tidy classes once the package is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Called for every module, class, function and attribute."""
        if obj.docstring is not None:
            obj.docstring.value = _rewrite(obj.docstring.value)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Once everything is loaded: fold private bases into their subclasses."""
        for cls in _classes(pkg):
            private = [b for b in cls.bases if str(b).rsplit(".", 1)[-1].startswith("_")]
            if private:
                # Copy what the private base provides, then stop naming the base.
                for name, member in cls.inherited_members.items():
                    if not name.startswith("_"):
                        cls.set_member(name, member.final_target)
                cls.bases = [b for b in cls.bases if b not in private]
            if cls.name in _NO_CONSTRUCTOR and "__init__" in cls.members:
                cls.del_member("__init__")


def _classes(module: griffe.Module) -> list[griffe.Class]:
    found: list[griffe.Class] = []
    for member in module.members.values():
        if member.is_alias:
            continue
        if isinstance(member, griffe.Class):
            found.append(member)
        elif isinstance(member, griffe.Module):
            found.extend(_classes(member))
    return found
