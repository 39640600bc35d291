"""The HTML waterfall: self-contained, safe to embed any span name, and drawn by a real browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentsteps._report.html import STATUS_COLORS, render_html
from agentsteps._report.tree import RunReport
from tests.support.trace_lines import GOLDEN_SPANS, span_line

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
        page = render_html(RunReport.from_spans([span_line(nasty, "1", None)]), title=nasty)
        assert "<script>alert(1)" not in page
        assert _data(page)["spans"][0]["name"] == nasty

    def test_a_name_like_a_placeholder_stays_text(self) -> None:
        """The template is filled in one pass: a step named {{DATA}} cannot copy the data."""
        report = RunReport.from_spans(
            [span_line("{{DATA}}", "1", None), span_line("{{TEXT}}", "2", "1")]
        )
        page = render_html(report, title="{{SUMMARY}}")
        assert page.count('id="agentsteps-data"') == 1
        assert page.count("<title>{{SUMMARY}}</title>") == 1
        assert [s["name"] for s in _data(page)["spans"]] == ["{{DATA}}", "{{TEXT}}"]

    def test_summary_appears_once(self) -> None:
        """The header figures are not repeated (the LLM call count appeared twice)."""
        page = render_html(RunReport.from_spans(GOLDEN_SPANS))
        header = page.split("</header>")[0]
        assert header.count("3 LLM calls") == 1
        assert "by model" in header
        assert "by persona" in header

    def test_a_call_stopped_by_its_steps_budget_is_not_a_failure(self) -> None:
        """A model call cut off because its step ran out of budget is 'stopped', not red."""
        call = span_line(
            "chat m", "c", "s2", kind="llm_call", start=1_500_000_000, end=2_000_000_000
        )
        call["status"] = {"code": "ERROR", "description": "StepBudgetExhausted: over"}
        failed = span_line("chat m", "d", "s1", kind="llm_call", start=2_000_000, end=3_000_000)
        failed["status"] = {"code": "ERROR", "description": "RateLimitError: slow down"}
        page = render_html(RunReport.from_spans([*GOLDEN_SPANS, call, failed]))
        by_id = {s["id"]: s for s in _data(page)["spans"]}
        assert by_id["c"]["status"] == "stopped"
        assert by_id["c"]["color"] == STATUS_COLORS["stopped"]
        assert by_id["d"]["status"] == "failed"
        assert by_id["d"]["color"] == STATUS_COLORS["failed"]

    def test_budget_is_a_table_of_limits(self) -> None:
        """The panel's budget is rows of (limit, allowed, used), not raw JSON."""
        summarize = _data(render_html(RunReport.from_spans(GOLDEN_SPANS)))["spans"][2]
        assert summarize["budget_rows"] == [["cost", "$0.0050", "$0.0100", "200%"]]

    def test_folded_rows_keep_the_page_small(self) -> None:
        """10,000 repeated steps are one row of the page, with their count."""
        spans = [span_line("run", "r", None, kind="persona", end=10**10, attributes={
            "agentsteps.persona.name": "looper"})]  # fmt: skip
        spans += [span_line("leaf", f"l{i}", "r", start=i, end=i + 1) for i in range(10_000)]
        page = render_html(RunReport.from_spans(spans))
        rows = _data(page)["spans"]
        assert [(s["name"], s["count"]) for s in rows] == [("looper", 1), ("leaf", 10_000)]
        assert len(page) < 100_000

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


# -- the page driven by Playwright (clicks, layout, network) -----------------------------

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _screenshot_dir() -> Path:
    """Where the screenshots go: AGENTSTEPS_SCREENSHOTS, else a temp dir (CI keeps either)."""
    path = Path(
        os.environ.get("AGENTSTEPS_SCREENSHOTS")
        or Path(tempfile.gettempdir()) / "agentsteps-report-screenshots"
    )
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def playwright_browser() -> Iterator[Any]:
    """Debian's chromium under Playwright; skips locally without them, fails in CI."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("CI must test the HTML report in a browser: pip install playwright")
        pytest.skip("playwright is not installed (the test extra has it)")
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("CI must test the HTML report in a browser: apt-get install chromium")
        pytest.skip("no chromium on this machine (CI installs it)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _open(browser: Any, page_file: Path, width: int) -> tuple[Any, list[str]]:
    """The page at ``width`` px, with every request it makes recorded (and refused)."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))

    def refuse(route: Any) -> None:
        if route.request.url == page_file.as_uri():
            route.continue_()
        else:
            route.abort()

    page.route("**/*", refuse)
    page.goto(page_file.as_uri())
    return page, requests


def _not_clipped(page: Any, selector: str) -> list[str]:
    """Texts of the elements matching ``selector`` whose content overflows their box."""
    return page.eval_on_selector_all(  # type: ignore[no-any-return]
        selector,
        """els => els.filter(e => e.scrollWidth > e.clientWidth + 1 || e.clientWidth < 20)
                   .map(e => e.textContent)""",
    )


def _broken_words(page: Any, selector: str) -> list[str]:
    """Texts of the elements matching ``selector`` that take more than one line."""
    return page.eval_on_selector_all(  # type: ignore[no-any-return]
        selector,
        """els => els.filter(e => e.getBoundingClientRect().height >
                                   1.5 * parseFloat(getComputedStyle(e).lineHeight))
                   .map(e => e.textContent)""",
    )


@pytest.fixture
def golden_page(tmp_path: Path) -> Path:
    spans = [*GOLDEN_SPANS]
    call = span_line("chat scripted-pro", "c", "s2", kind="llm_call", start=1_600_000_000,
                 end=2_300_000_000)  # fmt: skip
    call["status"] = {"code": "ERROR", "description": "StepBudgetExhausted: over budget"}
    spans.append(call)
    path = tmp_path / "run.html"
    report = RunReport.from_spans(spans, top=2)
    path.write_text(render_html(report, title="agentsteps report run.jsonl"), encoding="utf-8")
    return path


class TestPlaywright:
    """What a person sees: the page in chromium, clicked, at two widths."""

    @pytest.mark.parametrize("width", [1024, 1440])
    def test_click_a_step_shows_its_values(
        self, playwright_browser: Any, golden_page: Path, width: int
    ) -> None:
        """Clicking a row fills the panel: every value visible, none squeezed or clipped."""
        page, _ = _open(playwright_browser, golden_page, width)
        page.click("#row-2")
        assert page.inner_text("#panel h2") == "summarize"
        values = dict(
            zip(
                page.locator("#panel dl.kv:first-of-type > dt").all_inner_texts(),
                page.locator("#panel dl.kv:first-of-type > dd").all_inner_texts(),
                strict=True,
            )
        )
        assert values["status"] == "skipped"
        assert values["input tokens"] == "200"
        assert values["cost"] == "$0.0100"
        assert values["error"].startswith("StepBudgetExhausted: step 'summarize'")
        budget = page.locator("#panel table.budget tr").all_inner_texts()
        assert [re.split(r"\s+", r.strip()) for r in budget] == [
            ["limit", "allowed", "used", "%"],
            ["cost", "$0.0050", "$0.0100", "200%"],
        ]
        for dd in page.locator("#panel dd").all():
            assert dd.is_visible()
            box = dd.bounding_box()
            assert box is not None
            assert box["width"] > 100, f"value squeezed to {box['width']}px: {dd.inner_text()}"
        # The long attribute keys wrap instead of pushing the values aside.
        assert _not_clipped(page, "#panel dt, #panel dd") == []
        # ... at a dot, and the budget table's cells are never broken inside a word.
        assert _broken_words(page, "#panel table.budget td, #panel table.budget th") == []
        split_inside_a_part = page.eval_on_selector_all(
            "#panel dt",
            """dts => dts.filter(dt => Array.from(dt.childNodes).some(n => {
                   if (n.nodeType !== 3) { return false; }
                   const range = document.createRange();
                   range.selectNodeContents(n);
                   return range.getClientRects().length > 1;
               })).map(dt => dt.textContent)""",
        )
        assert split_inside_a_part == []
        assert "agentsteps.usage.self.cost_usd" in page.locator("#panel dt").all_inner_texts()
        assert _not_clipped(page, "#waterfall .row .label") == []
        shot = _screenshot_dir() / f"report-{width}.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot: {shot}")
        page.close()

    def test_failures_are_listed_and_link_to_their_rows(
        self, playwright_browser: Any, golden_page: Path
    ) -> None:
        """The error list shows each failure with its reason; a link selects the row."""
        page, _ = _open(playwright_browser, golden_page, 1024)
        assert page.is_visible("#errors")
        items = page.locator("#errors li").all_inner_texts()
        assert len(items) == 1  # the stopped model call is not a failure of its own
        assert items[0].startswith("skipped summarize: StepBudgetExhausted: step 'summarize'")
        page.click("#errors li a")
        assert page.inner_text("#panel h2") == "summarize"
        assert page.get_attribute("#row-2", "class") == "row bad selected"
        stopped = page.locator('.bar[data-status="stopped"]')
        assert stopped.count() == 1
        assert "stopped" in (stopped.get_attribute("class") or "")
        page.close()

    def test_no_request_leaves_the_page(self, playwright_browser: Any, golden_page: Path) -> None:
        """Opened from file://, the page loads nothing else: no font, image, script, beacon."""
        page, requests = _open(playwright_browser, golden_page, 1440)
        page.click("#row-1")
        page.wait_for_timeout(200)
        assert requests == [golden_page.as_uri()]
        page.close()

    def test_names_column_resizes(self, playwright_browser: Any, golden_page: Path) -> None:
        """Dragging the handle widens the names' column."""
        page, _ = _open(playwright_browser, golden_page, 1024)
        before = page.locator("#row-0 .label").bounding_box()["width"]
        handle = page.locator("#resizer").bounding_box()
        page.mouse.move(handle["x"] + 3, handle["y"] + 5)
        page.mouse.down()
        page.mouse.move(handle["x"] + 103, handle["y"] + 5)
        page.mouse.up()
        after = page.locator("#row-0 .label").bounding_box()["width"]
        assert after == pytest.approx(before + 100, abs=2)
        page.close()
