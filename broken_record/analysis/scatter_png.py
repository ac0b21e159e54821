"""The original tool's scatter plot, response_length_vs_loop_density.png.

Average response length against loop density, one point per conversation:
a Vega-Lite spec (the one Altair would write for the chart; written out
here because importing Altair costs analyze.py half a second) rendered to
PNG by vl-convert. vl-convert is imported only when a chart is drawn: it is
optional (without it, outputs.py records a warning instead of the PNG), and
its first rendering starts its engine (about half a second), so
``warm_up`` can start that early, on a thread, while the logs are analysed.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

TITLE = "Average Response Length vs Loop Density"
WIDTH, HEIGHT = 800, 480
SCHEMA = "https://vega.github.io/schema/vega-lite/v6.4.1.json"


def scatter_spec(points: list[list[float]]) -> dict[str, Any]:
    """The Vega-Lite spec of the chart: axes from 0 to at least 2000 characters and a density of 1."""
    rows = [{"avg_response_length": x, "loop_density": y} for x, y in points]
    x_max = max([2000.0] + [x for x, _ in points])
    y_max = max([1.0] + [y for _, y in points])
    return {
        "$schema": SCHEMA,
        "config": {"view": {"continuousWidth": 300, "continuousHeight": 300}},
        "data": {"values": rows},
        "mark": {"type": "circle", "opacity": 0.7, "size": 60},
        "encoding": {
            "x": {"field": "avg_response_length", "type": "quantitative", "title": "Average Response Length",
                  "scale": {"domain": [0, x_max]}},
            "y": {"field": "loop_density", "type": "quantitative", "title": "Loop Density",
                  "scale": {"domain": [0, y_max]}},
        },
        "title": TITLE,
        "width": WIDTH,
        "height": HEIGHT,
    }


_lock = threading.Lock()  # one rendering at a time: the warm-up and the real one


def to_png(spec: dict[str, Any]) -> bytes:
    """A Vega-Lite spec rendered to PNG bytes by vl-convert, at scale 1."""
    import vl_convert as vlc

    with _lock:
        png: bytes = vlc.vegalite_to_png(spec, scale=1)
    return png


def warm_up() -> threading.Thread:
    """Start vl-convert's engine on a daemon thread (a first rendering); a missing vl-convert is ignored."""

    def run() -> None:
        try:
            to_png(scatter_spec([]))
        except Exception:  # the real rendering reports it
            pass

    thread = threading.Thread(target=run, name="scatter-png-warm-up", daemon=True)
    thread.start()
    return thread


def write_scatter_png(path: str | Path, points: list[list[float]]) -> None:
    """Draw ``[[avg_response_length, loop_density], ...]`` into the PNG at ``path`` (whole or not at all)."""
    data = to_png(scatter_spec(points))
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
