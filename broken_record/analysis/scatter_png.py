"""The original tool's scatter plot, response_length_vs_loop_density.png.

Average response length against loop density, one point per conversation,
drawn with Altair and rendered to PNG by vl-convert. Both are imported only
when a chart is drawn: they are slow to import and optional (without
vl-convert, outputs.py records a warning instead of the PNG).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TITLE = "Average Response Length vs Loop Density"
WIDTH, HEIGHT = 800, 480


def scatter_spec(points: list[list[float]]) -> dict[str, Any]:
    """The Vega-Lite spec of the chart: axes from 0 to at least 2000 characters and a density of 1."""
    import altair as alt  # heavy: only when a chart is drawn

    rows = [{"avg_response_length": x, "loop_density": y} for x, y in points]
    x_max = max([2000.0] + [x for x, _ in points])
    y_max = max([1.0] + [y for _, y in points])
    chart = (
        alt.Chart(alt.Data(values=rows), title=TITLE)
        .mark_circle(size=60, opacity=0.7)
        .encode(
            x=alt.X("avg_response_length:Q", title="Average Response Length", scale=alt.Scale(domain=[0, x_max])),
            y=alt.Y("loop_density:Q", title="Loop Density", scale=alt.Scale(domain=[0, y_max])),
        )
        .properties(width=WIDTH, height=HEIGHT)
    )
    spec: dict[str, Any] = chart.to_dict()
    return spec


def to_png(spec: dict[str, Any]) -> bytes:
    """A Vega-Lite spec rendered to PNG bytes by vl-convert, at scale 1."""
    import vl_convert as vlc

    png: bytes = vlc.vegalite_to_png(spec, scale=1)
    return png


def write_scatter_png(path: str | Path, points: list[list[float]]) -> None:
    """Draw ``[[avg_response_length, loop_density], ...]`` into the PNG at ``path``."""
    Path(path).write_bytes(to_png(scatter_spec(points)))
