"""results.html: the comparison as one self-contained static file.

The same frames (compare.py) and the same Altair charts (dashboard.py) as
the Streamlit page, embedded with vega-embed. Vega, Vega-Lite and
vega-embed are inlined from vl-convert's bundled copy, so the file opens
from disk with no server and no network. Tables are plain HTML with every
cell escaped. What it leaves out: the conversation reader (one file per
comparison stays small) and any Streamlit widget (the scatter's y measure
is chosen with the chart's own radio buttons).
"""

from __future__ import annotations

import html
import json
from datetime import datetime
from pathlib import Path

import altair as alt
import pandas as pd

from broken_record.view import frames as compare
from broken_record.view.app import histogram_chart, scatter_chart, survival_chart, types_chart
from broken_record.view.frames import BOUNDED, Run

PAGE_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}
h1{font-size:1.6rem} h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;font-size:0.85rem;margin:8px 0}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
.note{color:#555;font-size:0.85rem} .error{color:#a50f15;background:#fde0dd;padding:6px 10px;border-radius:4px}
.chart{margin:8px 0} .wide{overflow-x:auto}
"""


def _js_bundle() -> str:
    """vega + vega-lite + vega-embed as one script, matching Altair's schema."""
    import vl_convert

    wanted = alt.SCHEMA_VERSION.lstrip("v").rsplit(".", 1)[0]  # "v6.4.1" -> "6.4"
    version = wanted if wanted in vl_convert.get_vegalite_versions() else None
    # Nothing in the bundle may end the <script> element it sits in.
    return vl_convert.javascript_bundle(vl_version=version).replace("</script", "<\\/script")


def _script_json(obj) -> str:
    """JSON safe inside a <script> element (no '</' can close it)."""
    return json.dumps(obj).replace("</", "<\\/").replace("<!--", "<\\!--")


def _table(frame: pd.DataFrame, formats: dict[str, str] | None = None) -> str:
    """A frame as an escaped HTML table; ``formats`` maps column -> format spec."""
    formats = formats or {}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for record in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, record):
            spec = formats.get(column)
            if spec and isinstance(value, (int, float)) and not pd.isna(value):
                text = format(value, spec)
            elif isinstance(value, float) and pd.isna(value):
                text = "—"
            else:
                text = str(value)
            cells.append(f"<td>{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def summary_formats(table: pd.DataFrame) -> dict[str, str]:
    """Number formats for the summary table: figures as on the page, type shares as %."""
    formats = {"avg_response_length": ".1f", "avg_loop_density": ".4f", f"avg_{BOUNDED}": ".3f"}
    formats.update({column: ".0%" for column in table.columns if column not in compare.SUMMARY_FIGURES})
    return formats


def build_html(runs: list[Run], title: str = "Broken Record Parrot — run comparison") -> str:
    """The whole results.html as a string."""
    good = [r for r in runs if r.ok]
    labels = [r.label for r in good]
    listed = ", ".join(f"{r.label} ({len(compare.conversations(r))} conversations, {r.folder})" for r in good)
    written = datetime.now().strftime("%Y-%m-%d %H:%M")
    parts = [f"<h1>{html.escape(title)}</h1>",
             f'<p class="note">Written {written} by view.py --html: {html.escape(listed)}</p>']
    parts += [f'<p class="error">{html.escape(r.label)}: {html.escape(r.error)}</p>' for r in runs if r.error]
    charts: list[tuple[str, alt.TopLevelMixin]] = []

    def chart(name: str, heading: str, figure: alt.TopLevelMixin, note: str = "") -> None:
        charts.append((name, figure))
        parts.append(f'<h2>{html.escape(heading)}</h2><div class="chart" id="chart-{name}"></div>')
        if note:
            parts.append(f'<p class="note">{html.escape(note)}</p>')

    if good:
        chart("scatter", "Response length vs loop density",
              scatter_chart(compare.points(good), labels, y=None).properties(width=760),
              "Click a run in the legend to hide its points; click it again to show them. "
              "The radio buttons below the chart choose the y measure.")
        table = compare.summary(good)
        parts.append('<h2>Summary</h2><div class="wide">' + _table(table, summary_formats(table)) + "</div>")
        parts.append('<p class="note">Type columns: share of the run\'s conversations where that loop or '
                     "break type is present.</p>")
        settings = compare.settings_diff(good)
        parts.append("<h2>Settings compared</h2>")
        parts.append(f'<div class="wide">{_table(settings)}</div>' if not settings.empty
                     else '<p class="note">The runs record no settings.</p>')
        chart("histograms", "Distributions", histogram_chart(compare.histograms(good), labels))
        chart("types", "Loop and break types", types_chart(compare.type_shares(good), labels))
        chart("survival", "Loop onset", survival_chart(compare.survival(good), labels).properties(width=760),
              "A conversation that never loops counts as loop-free for as long as it ran and then "
              "leaves the count (Kaplan-Meier).")

    embeds = "\n".join(
        f"vegaEmbed('#chart-{name}', {_script_json(figure.to_dict())}, {{actions: false, renderer: 'svg'}})"
        f".catch(e => {{ document.getElementById('chart-{name}').textContent = 'chart failed: ' + e; }});"
        for name, figure in charts
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{PAGE_CSS}</style>\n"
        f'<script type="text/javascript">\n{_js_bundle()}\n</script></head>\n<body>\n'
        + "\n".join(parts)
        + f'\n<script type="text/javascript">\n{embeds}\n</script>\n</body></html>\n'
    )


def write_html(path: str | Path, runs: list[Run]) -> Path:
    """Write results.html; returns its path."""
    path = Path(path)
    path.write_text(build_html(runs), encoding="utf-8")
    return path
