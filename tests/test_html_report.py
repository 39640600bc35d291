"""The HTML waterfall: self-contained, safe to embed any span name, and drawn by a real browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest

from agentsteps._report.html import STATUS_COLORS, render_html
from agentsteps._report.tree import RunReport

from .test_report import GOLDEN_SPANS, _span

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)


def _data(page: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="agentsteps-data">(.*?)</script>', page)
    assert match is not None
    return json.loads(match.group(1))  # type: ignore[no-any-return]


class TestPage:
    """The generated page."""

    def test_fetches_nothing(self) -> None:
        """No external script, style, font or image: the file works offline, anywhere."""
        page = render_html(RunReport.from_spans(GOLDEN_SPANS))
        assert not re.search(r"\b(src|href)\s*=", page)
        assert "@import" not in page
        assert "url(" not in page
        assert "http://" not in page
        assert "https://" not in page
        # The content security policy forbids any fetch, should a span name try.
        assert "default-src 'none'" in page

    def test_embeds_every_span_with_its_figures(self) -> None:
        """The embedded data has one entry per span with status, colour, budget and cost."""
        data = _data(render_html(RunReport.from_spans(GOLDEN_SPANS), title="my run"))
        assert data["title"] == "my run"
        assert [(s["name"], s["depth"], s["status"]) for s in data["spans"]] == [
            ("reviewer", 0, "completed"),
            ("review", 1, "completed"),
            ("summarize", 1, "skipped"),
        ]
        summarize = data["spans"][2]
        assert summarize["color"] == STATUS_COLORS["skipped"]
        assert summarize["budget"] == {"max_tokens": None, "max_usd": 0.005, "max_llm_calls": None}
        assert summarize["budget_pct"] == 200.0
        assert summarize["cost"] == "$0.0100"
        assert summarize["start_ms"] == 1500.0
        assert summarize["duration_ms"] == 900.0
        assert summarize["error"].startswith("StepBudgetExhausted: step 'summarize'")
        assert data["total_ms"] == 2500.0

    def test_span_names_cannot_break_out_of_the_script(self) -> None:
        """A name containing </script> or <!-- stays data: escaped inside the JSON."""
        nasty = "</script><script>alert(1)</script><!--"
        page = render_html(RunReport.from_spans([_span(nasty, "1", None)]), title=nasty)
        assert "<script>alert(1)" not in page
        assert _data(page)["spans"][0]["name"] == nasty

    def test_text_report_is_included(self) -> None:
        """Readers without JavaScript get the text report."""
        page = render_html(RunReport.from_spans(GOLDEN_SPANS))
        assert "├─ review" in page
        assert "notes:" in page


# -- a real browser ---------------------------------------------------------------------


def _chromium(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[bytes]:
    assert CHROMIUM is not None
    profile = tmp_path / "profile"
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=2000",
        *args,
    ]
    return subprocess.run(command, capture_output=True, timeout=120, check=True)


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA PNG (what Chromium writes) into rows of pixels."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6), (depth, colour)
    bpp = 4 if colour == 6 else 3
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        kind, line = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        for x in range(stride):
            left = line[x - bpp] if x >= bpp else 0
            up, corner = prev[x], (prev[x - bpp] if x >= bpp else 0)
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
                line[x] = (line[x] + pred) & 0xFF
        rows.append(bytes(line) if bpp == 3 else bytes(b for i, b in enumerate(line) if i % 4 != 3))
        prev = line
    return width, height, rows


@pytest.fixture
def browser() -> None:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("CI must test the HTML report in a browser: apt-get install chromium")
        pytest.skip("no chromium on this machine (CI installs it)")


@pytest.mark.usefixtures("browser")
class TestInBrowser:
    """The page in headless Chromium."""

    def test_waterfall_draws_one_bar_per_span(self, tmp_path: Path) -> None:
        """After the script ran, the DOM holds one row and one bar per span."""
        report = RunReport.from_spans(GOLDEN_SPANS)
        page = tmp_path / "run.html"
        page.write_text(render_html(report), encoding="utf-8")
        dom = _chromium("--dump-dom", page.as_uri(), tmp_path=tmp_path).stdout.decode()
        assert dom.count('class="bar"') == len(report.spans) == 3
        assert dom.count('class="row') == 3
        assert 'data-status="skipped"' in dom
        # The first row is selected on load, so the side panel shows its figures.
        assert "<h2>reviewer</h2>" in dom

    def test_screenshot_is_not_blank(self, tmp_path: Path) -> None:
        """A screenshot shows the page: many colours, among them the bars' status colours."""
        report = RunReport.from_spans(GOLDEN_SPANS)
        page = tmp_path / "run.html"
        page.write_text(render_html(report), encoding="utf-8")
        shot = tmp_path / "run.png"
        _chromium(
            f"--screenshot={shot}", "--window-size=1200,500", page.as_uri(), tmp_path=tmp_path
        )
        width, height, rows = _png_pixels(shot.read_bytes())
        assert (width, height) == (1200, 500)
        colours = {row[i : i + 3] for row in rows for i in range(0, len(row), 3)}
        assert len(colours) > 50  # text, lines, bars: anything but an empty page
        for status in ("completed", "skipped"):
            rgb = bytes.fromhex(STATUS_COLORS[status][1:])
            assert rgb in colours, f"no {status} bar drawn"
