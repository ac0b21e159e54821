"""The dashboard and results.html in a real browser: Debian's headless Chromium via Playwright.

The app is served by `streamlit run` on a free loopback port; the test
waits until the scatter chart has drawn each run's points (pixels in the
runs' colours on its canvas), takes a screenshot, and checks that model text
with <script>/<b> shows as text. Then `view.py --html` writes results.html,
which is opened from disk with every non-file request blocked: its charts
must draw from the inlined Vega bundle, and a legend click must hide a run.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from broken_record import compare

playwright_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_RUNS = ROOT / "tests" / "fixtures" / "runs"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# category10, the scheme every chart uses: run_a is the first colour, run_b the second.
RUN_COLOURS = {"run_a": (0x1F, 0x77, 0xB4), "run_b": (0xFF, 0x7F, 0x0E)}

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[str]:
    base = tmp_path_factory.mktemp("browser_runs")
    folders = []
    for name in ("run_a", "run_b"):
        shutil.copytree(FIXTURE_RUNS / name, base / name)
        compare.analyse_folder(base / name)
        folders.append(str(base / name))
    return folders


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(runs, tmp_path_factory):
    """`streamlit run` on 127.0.0.1; always stopped at teardown."""
    port = free_port()
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    command = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "broken_record" / "dashboard.py"),
        "--server.headless", "true", "--server.address", "127.0.0.1", "--server.port", str(port),
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", "--", *runs,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def colour_counts(page, canvas) -> dict[str, int]:
    """How many pixels of each run's colour a canvas holds."""
    return canvas.evaluate(
        """(canvas, colours) => {
            const ctx = canvas.getContext('2d');
            const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
            const counts = {};
            for (const [run, rgb] of Object.entries(colours)) {
                let n = 0;
                for (let i = 0; i < data.length; i += 4) {
                    if (data[i + 3] > 100 && Math.abs(data[i] - rgb[0]) < 40
                        && Math.abs(data[i + 1] - rgb[1]) < 40 && Math.abs(data[i + 2] - rgb[2]) < 40) n++;
                }
                counts[run] = n;
            }
            return counts;
        }""",
        RUN_COLOURS,
    )


def test_dashboard_renders_in_chromium(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 4000})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        page.goto(server, wait_until="domcontentloaded")
        page.get_by_text("Response length vs loop density").first.wait_for(timeout=90_000)
        canvas = page.locator("[data-testid='stVegaLiteChart'] canvas, .vega-embed canvas").first
        canvas.wait_for(timeout=90_000)
        # Charts draw after the page answers: wait until both runs' points are on the canvas.
        deadline = time.monotonic() + 60
        while True:
            counts = colour_counts(page, canvas.element_handle())
            if all(n > 30 for n in counts.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        shot = tmp_path / "dashboard.png"
        page.get_by_text("Read a conversation").first.wait_for(timeout=30_000)
        time.sleep(1)
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot: {shot}")
        assert all(n > 30 for n in counts.values()), f"scatter points not drawn: {counts}"
        assert page.locator(".vega-embed").count() >= 4  # scatter, histograms, types, survival
        # The reader opens on run_a's first conversation, the one with markup in it.
        reader = page.locator(".brp-reader")
        reader.wait_for(timeout=30_000)
        text = reader.inner_text()
        assert "<script>alert('pwned')</script>" in text
        assert "<b>bold</b>" in text
        assert reader.locator("b, script, img").count() == 0
        assert dialogs == []
        assert shot.stat().st_size > 10_000
    finally:
        page.close()


def test_results_html_renders_offline(runs, browser, tmp_path):
    target = tmp_path / "results.html"
    result = subprocess.run([sys.executable, str(ROOT / "view.py"), "--html", str(target), *runs],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout
    text = target.read_text()
    assert "cdn.jsdelivr" not in text and "<script src" not in text
    conversations = sum(len(json.loads((Path(f) / "analysis.json").read_text())["conversations"]) for f in runs)

    page = browser.new_page(viewport={"width": 1300, "height": 900})
    outside: list[str] = []

    def block(route):
        outside.append(route.request.url)
        route.abort()

    page.route(lambda url: not url.startswith("file:"), block)
    try:
        page.goto(target.as_uri())
        symbols = page.locator("#chart-scatter svg .mark-symbol path")
        symbols.first.wait_for(timeout=60_000)
        for name in ("histograms", "types", "survival"):
            page.locator(f"#chart-{name} svg .role-mark").first.wait_for(timeout=30_000)
        page.screenshot(path=str(tmp_path / "results_html.png"), full_page=True)
        print(f"screenshot: {tmp_path / 'results_html.png'}")
        assert symbols.count() == conversations + 2  # the points and two legend symbols

        def opacities() -> list[str]:
            return symbols.evaluate_all("els => els.map(e => e.getAttribute('opacity'))")

        assert opacities().count("0") == 0
        page.locator("#chart-scatter svg .role-legend-label text", has_text="run_b").click()
        page.wait_for_timeout(300)
        run_b = len(json.loads((Path(runs[1]) / "analysis.json").read_text())["conversations"])
        assert opacities().count("0") == run_b  # run_b's points hidden
        page.locator("#chart-scatter svg .role-legend-label text", has_text="run_b").click()
        page.wait_for_timeout(300)
        assert opacities().count("0") == 0  # and back
        assert page.locator("table").count() == 2  # summary and settings
        assert outside == []
    finally:
        page.close()
