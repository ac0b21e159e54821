"""results.html: the comparison as one self-contained static file.

The same sections as the Streamlit page (sections.py: headings, captions,
order), the same frames (frames.py) and the same Altair charts (charts.py),
embedded with vega-embed. Vega, Vega-Lite and vega-embed are inlined from
vl-convert's bundled copy, so the file opens from disk with no server and
no network. Tables are plain HTML with every cell escaped. What differs
from the page is said in sections.py: the conversation reader is left out,
and the scatter's y measure is chosen with the chart's own radio buttons
(no Streamlit widget exists here).
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd

from broken_record.view.frames import Run
from broken_record.view.sections import FILE, TITLE, Column, run_list, sections_on

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
    # vl-convert's stub marks ``snippet`` as required; at run time it defaults
    # to one that sets vegaEmbed, vegaLite and vega on window, as wanted here.
    bundle: Callable[..., str] = vl_convert.javascript_bundle
    # Nothing in the bundle may end the <script> element it sits in.
    return bundle(vl_version=version).replace("</script", "<\\/script")


def _script_json(obj: Any) -> str:
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


def table_formats(columns: dict[str, Column]) -> dict[str, str]:
    """Format specs for a table's numbers, as the page shows them; shares as whole percentages."""
    formats = {}
    for name, column in columns.items():
        if column.share:
            formats[name] = ".0%"
        elif column.decimals is not None:
            formats[name] = f".{column.decimals}f"
    return formats


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text, quote=False)}</p>'


def build_html(runs: list[Run], title: str = TITLE) -> str:
    """The whole results.html as a string."""
    good = [r for r in runs if r.ok]
    labels = [r.label for r in good]
    written = datetime.now().strftime("%Y-%m-%d %H:%M")
    parts = [f"<h1>{html.escape(title)}</h1>",
             f'<p class="note">Written {written} by view.py --html: {html.escape(run_list(good, FILE))}</p>']
    parts += [f'<p class="error">{html.escape(r.label)}: {html.escape(r.error)}</p>' for r in runs if r.error]
    charts: list[tuple[str, alt.TopLevelMixin]] = []

    for section in sections_on(FILE) if good else ():
        if section.frame is None:
            raise ValueError(f"section {section.id!r} has no frame to show in results.html")
        frame = section.frame(good)
        heading = f"<h2>{html.escape(section.heading)}</h2>"
        if section.chart is not None:
            charts.append((section.id, section.draw(frame, labels, FILE)))
            parts.append(heading + f'<div class="chart" id="chart-{section.id}"></div>')
        elif frame.empty and section.empty:
            parts.append(heading + _note(section.empty))
            continue
        else:
            formats = table_formats(section.columns(frame)) if section.columns else None
            parts.append(heading + f'<div class="wide">{_table(frame, formats)}</div>')
        caption = section.caption_on(FILE)
        if caption:
            parts.append(_note(caption))

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
