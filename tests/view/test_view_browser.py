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
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from broken_record.analysis.outputs import write_analysis
from broken_record.runs.layout import ANALYSIS_FILE

playwright_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_RUNS = ROOT / "tests" / "fixtures" / "runs"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# category10, the scheme every chart uses: run_a is the first colour, run_b the second.
RUN_COLOURS = {"run_a": "#1f77b4", "run_b": "#ff7f0e"}

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[str]:
    base = tmp_path_factory.mktemp("browser_runs")
    folders = []
    for name in ("run_a", "run_b"):
        shutil.copytree(FIXTURE_RUNS / name, base / name)
        write_analysis(base / name)
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
        sys.executable, "-m", "streamlit", "run", str(ROOT / "view.py"),
        "--server.headless", "true", "--server.address", "127.0.0.1", "--server.port", str(port),
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", "--", *runs,
    ]
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
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


def point_colours(chart) -> list[str]:
    """The fill colour of every drawn scatter point (legend symbols excluded)."""
    return chart.locator(".mark-symbol.role-mark path").evaluate_all(
        "els => els.map(e => (e.getAttribute('fill') || '').toLowerCase())"
    )


def opacities(chart) -> list[str]:
    return chart.locator(".mark-symbol.role-mark path").evaluate_all(
        "els => els.map(e => e.getAttribute('opacity') ?? '1')"
    )


def y_axis_top(chart) -> float:
    """The largest tick value on the chart's y axis."""
    axis = chart.locator(".role-axis[aria-label^='Y-axis']").first
    ticks = axis.locator(".role-axis-label text").all_text_contents()
    return max(float(t.replace(",", "").replace("\u2212", "-")) for t in ticks)


def conversation_counts(runs: list[str]) -> dict[str, int]:
    return {Path(f).name: len(json.loads((Path(f) / ANALYSIS_FILE).read_text())["conversations"])
            for f in runs}


def test_dashboard_renders_in_chromium(server, browser, runs, tmp_path):
    counts = conversation_counts(runs)
    page = browser.new_page(viewport={"width": 1400, "height": 4000})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        page.goto(server, wait_until="domcontentloaded")
        charts = page.locator("[data-testid='stVegaLiteChart']")
        scatter = charts.first
        # The page answers before the charts draw: wait for every point.
        page.wait_for_function(
            "n => { const c = document.querySelector(\"[data-testid='stVegaLiteChart']\");"
            " return c && c.querySelectorAll('.mark-symbol.role-mark path').length >= n; }",
            arg=sum(counts.values()), timeout=90_000,
        )
        page.locator(".brp-reader").wait_for(timeout=60_000)
        page.wait_for_timeout(1000)
        shot = tmp_path / "dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot: {shot}")
        assert shot.stat().st_size > 10_000

        # Each run's points drawn in its own colour.
        colours = point_colours(scatter)
        assert len(colours) == sum(counts.values())
        for run, colour in RUN_COLOURS.items():
            assert colours.count(colour) == counts[run], (run, colours)
        assert charts.count() >= 4  # scatter, histograms, types, survival
        for i in range(1, 4):
            assert charts.nth(i).locator(".role-mark path, .role-mark rect, .role-mark line").count() > 0

        # A legend click hides a run; a second click shows it again.
        label = scatter.locator(".role-legend-label text", has_text="run_b")
        label.click()
        page.wait_for_timeout(500)
        assert opacities(scatter).count("0") == counts["run_b"]
        label.click()
        page.wait_for_timeout(500)
        assert opacities(scatter).count("0") == 0

        # The reader opens on run_a's first conversation, the one with markup in it.
        reader = page.locator(".brp-reader")
        text = reader.inner_text()
        assert "<script>alert('pwned')</script>" in text
        assert "<b>bold</b>" in text
        assert reader.locator("b, script, img").count() == 0
        assert dialogs == []
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

    page = browser.new_page(viewport={"width": 1300, "height": 900})
    outside: list[str] = []

    def block(route):
        outside.append(route.request.url)
        route.abort()

    page.route(lambda url: not url.startswith("file:"), block)
    try:
        page.goto(target.as_uri())
        scatter = page.locator("#chart-scatter")
        symbols = scatter.locator(".mark-symbol.role-mark path")
        symbols.first.wait_for(timeout=60_000)
        for name in ("histograms", "types", "survival"):
            page.locator(f"#chart-{name} svg .role-mark").first.wait_for(timeout=30_000)
        page.screenshot(path=str(tmp_path / "results_html.png"), full_page=True)
        print(f"screenshot: {tmp_path / 'results_html.png'}")
        counts = conversation_counts(runs)
        colours = point_colours(scatter)
        for run, colour in RUN_COLOURS.items():
            assert colours.count(colour) == counts[run], (run, colours)
        assert opacities(scatter).count("0") == 0
        label = scatter.locator(".role-legend-label text", has_text="run_b")
        label.click()
        page.wait_for_timeout(300)
        assert opacities(scatter).count("0") == counts["run_b"]  # run_b's points hidden
        label.click()
        page.wait_for_timeout(300)
        assert opacities(scatter).count("0") == 0  # and back
        # The y measure radio switches the scatter to the bounded share (0..1).
        assert y_axis_top(scatter) > 1  # the classic density of the real runs exceeds 1
        page.locator("#chart-scatter input[type=radio]").nth(1).check()
        page.wait_for_timeout(300)
        assert y_axis_top(scatter) <= 1
        assert page.locator("table").count() == 2  # summary and settings
        assert outside == []
    finally:
        page.close()


def test_reader_marks_flags_and_the_onset_on_their_messages_in_chromium(browser, tmp_path):
    """The reader's block for a hand-made new-style analysis.json entry, drawn by Chromium."""
    from broken_record.view import frames
    from broken_record.view.reader import reader_caption, reader_html

    roles = ["system"] + ["assistant", "user"] * 4
    turns = [{"index": m, "role": role, "text": f"{role}: message {m}", "stop": "eos" if m else None}
             for m, role in enumerate(roles)]
    conv = {
        "file": "x.jsonl", "turns": len(roles), "loop_density": 0.5, "loop_onset_turn": 2, "loop_onset_message": 5,
        "loops": {"single_turn_loop": {"present": True, "turns": [2, 3], "messages": [5, 7], "severity": 0.9,
                                       "onset": 2, "onset_message": 5}},
        "breaks": {"word_soup": {"present": True, "turns": [3], "messages": [7], "severity": 0.5}},
        "user": {"loops": {"multi_turn_loop": {"present": True, "turns": [1, 2], "messages": [4, 6],
                                               "severity": 0.7, "onset": 1, "onset_message": 4}},
                 "breaks": {}, "loop_onset_turn": 1, "loop_onset_message": 4},
        "echoes": {"assistant": [7], "user": []}, "drivers": {"driven_by": "user"},
    }
    page = browser.new_page(viewport={"width": 900, "height": 700})
    try:
        page.set_content(f"<p>{reader_caption(conv, turns)}</p>" + reader_html(turns, frames.turn_flags(conv, turns), []))
        shot = tmp_path / "reader.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot: {shot}")
        onset = page.locator(".brp-turn.brp-onset")
        assert onset.count() == 2
        assert [onset.nth(i).get_attribute("data-message") for i in range(2)] == ["4", "5"]
        assert onset.nth(1).locator(".brp-head").inner_text().startswith("#5 · assistant turn 2")
        assert onset.nth(1).locator(".brp-flag.onset").is_visible()
        seven = page.locator(".brp-turn[data-message='7'] .brp-head").inner_text()
        assert "single turn loop" in seven and "word soup" in seven and "echoes #6" in seven
        plain = page.locator(".brp-turn[data-message='3']")
        assert plain.locator(".brp-flag").count() == 0
        # The onset turn is drawn differently from a plain one.
        style = "e => getComputedStyle(e).borderLeftColor + getComputedStyle(e).backgroundColor"
        assert onset.nth(1).evaluate(style) != plain.evaluate(style)
    finally:
        page.close()
