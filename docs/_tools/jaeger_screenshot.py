"""
Take docs/img/jaeger-trace.png: a real run of examples/code_review.py in the Jaeger UI.

    python docs/_tools/jaeger_screenshot.py --ui-assets PATH/TO/JAEGER-UI-ASSETS

It starts the Jaeger v2 binary (``AGENTSTEPS_JAEGER_BIN``, built by ``.ci/jaeger.sh``) on free
loopback ports as ``tests/tracing/test_jaeger.py`` does, sends it ``agentsteps run
examples/code_review.py`` over OTLP/HTTP with the standard variables, opens the trace in
Debian's headless Chromium (``apt-get install chromium``) driven by Playwright from PyPI
(``pip install playwright``; no ``playwright install``: it uses /usr/bin/chromium), opens the
failed model call's attributes, and saves the page as a PNG.

The binary built from the Go module serves only a placeholder page where the UI should be
(release builds embed the jaeger-ui assets, which the module does not carry), so the UI comes
from the jaeger-ui assets of the same version, v1.75.0, taken from a Jaeger release.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.support.jaeger_server import start_jaeger  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERVICE = "code-review"
FAILED_CALL = "chat scripted-mini"  # the model call under write_tests that ran out of budget


def send_run(otlp_http_url: str, workdir: Path) -> str:
    """Run the example with OTLP export to Jaeger; return its trace id."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env.update(
        OTEL_SERVICE_NAME=SERVICE,
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment.name=dev",
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_http_url,
    )
    done = subprocess.run(
        [sys.executable, "-m", "agentsteps", "run", str(ROOT / "examples" / "code_review.py")],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found = re.search(r"trace ([0-9a-f]{32}) sent over OTLP", done.stderr)
    if found is None:
        msg = f"no trace id in the output of agentsteps run:\n{done.stderr}"
        raise SystemExit(msg)
    return found.group(1)


def screenshot(url: str, out: Path) -> None:
    """Open the trace page, expand the failed model call, save a PNG of the page."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        page.goto(url)
        page.get_by_text("invoke_workflow write_tests").first.wait_for()
        # The third model call of the run is the one write_tests made (rows are in time order).
        page.get_by_text(FAILED_CALL, exact=True).nth(2).click()
        page.get_by_text("Tags:").first.click()  # the attribute table, types and all
        status = page.get_by_text("otel.status_description").first
        status.wait_for()
        status.scroll_into_view_if_needed()  # the table scrolls: show the ERROR and its reason
        page.wait_for_timeout(500)  # let the expanded row finish its layout
        page.screenshot(path=str(out))
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--ui-assets", type=Path, required=True, help="a jaeger-ui build/")
    parser.add_argument("--jaeger", default=os.environ.get("AGENTSTEPS_JAEGER_BIN", ""))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "jaeger-trace.png")
    args = parser.parse_args()
    if not args.jaeger:
        parser.error('set AGENTSTEPS_JAEGER_BIN="$(bash .ci/jaeger.sh)" or pass --jaeger')
    if not (args.ui_assets / "index.html").is_file():
        parser.error(f"--ui-assets {args.ui_assets}: no index.html there (a jaeger-ui build/)")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with start_jaeger(args.jaeger, workdir, ui_assets=args.ui_assets) as jaeger:
            trace_id = send_run(jaeger.otlp_http_url, workdir)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            screenshot(f"{jaeger.query_url}/trace/{trace_id}", args.out)
    print(f"{args.out}: trace {trace_id}, {args.out.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
