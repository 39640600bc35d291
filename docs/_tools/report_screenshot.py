"""
Take the screenshot of the HTML report that docs/cli.md shows (docs/img/report.png).

Runs examples/code_review.py under ``agentsteps run --html`` in a temporary directory,
opens the page in Debian's chromium through Playwright (no browser download), clicks the
step the budget stopped, and saves a 1440 x 900 screenshot. Needs ``playwright`` (the test
extra) and ``chromium``:

    python docs/_tools/report_screenshot.py [OUT.png]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def main() -> int:
    """Write the screenshot; print its path and size."""
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "img" / "report.png"
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("report_screenshot: no chromium (apt-get install chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        page_file = Path(tmp) / "run.html"
        subprocess.run(
            [sys.executable, "-m", "agentsteps", "run", "--html", str(page_file), "--top", "3",
             "--trace", str(Path(tmp) / "trace.jsonl"), "-o", str(Path(tmp) / "report.txt"),
             "examples/code_review.py"],
            cwd=ROOT, check=True, capture_output=True,
        )  # fmt: skip
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(page_file.as_uri())
            page.click("#errors li a")  # the first failure: its row, selected, in the panel
            page.evaluate("window.scrollTo(0, 0)")
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
            browser.close()
    print(f"{out} ({out.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
