"""v0's page: the most common tokens of the one long completion.

    streamlit run v0/app.py

Reads v0/output/generation.json (or $V0_OUTPUT/generation.json), written by
v0/run.sh. The token texts were looked up on the server at generation time,
so this page needs no server.
"""

import json
import os
from collections import Counter
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

HERE = Path(__file__).resolve().parent
OUTPUT = Path(os.environ.get("V0_OUTPUT", HERE / "output")) / "generation.json"


@st.cache_data
def load(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def visible(piece: str) -> str:
    """Token text with its whitespace shown: " He\\n" -> "␣He⏎"."""
    return piece.replace(" ", "␣").replace("\n", "⏎").replace("\t", "⇥") or "∅"


def top_tokens(data: dict, n: int) -> pd.DataFrame:
    """One row per token id among the n most common: id, text, label, count, share."""
    ids = data["tokens"]
    pieces = data.get("token_text", {})
    rows = []
    for tid, count in Counter(ids).most_common(n):
        text = pieces.get(str(tid), "?")
        rows.append({"id": tid, "text": text, "label": f"{tid}  {visible(text)}",
                     "count": count, "share": count / len(ids)})
    return pd.DataFrame(rows)


def chart(df: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(df)
        .mark_bar(color="#d01c24")
        .encode(
            x=alt.X("count:Q", title="times generated"),
            y=alt.Y("label:N", sort="-x", title="token id and text"),
            tooltip=[alt.Tooltip("id:Q"), alt.Tooltip("text:N"), alt.Tooltip("count:Q"),
                     alt.Tooltip("share:Q", format=".1%")],
        )
        .properties(height=alt.Step(18))
    )


st.set_page_config(page_title="Broken Record Parrot v0", layout="wide")
st.title("v0: one long completion, EOS ignored")

try:
    data = load(str(OUTPUT))
    if not data.get("tokens"):
        raise ValueError("it holds no tokens")
except (OSError, ValueError) as err:
    st.error(f"Cannot read {OUTPUT}: {err}. Run `bash v0/run.sh` first.")
    st.stop()

m = data.get("measurement", {})
cols = st.columns(4)
cols[0].metric("tokens generated", len(data["tokens"]))
cols[1].metric("speaker turns in the output", m.get("output_turns", "?"),
               help="1 = the whole output is one continuation of the open turn")
cols[2].metric("turns in the prompt", m.get("prompt_turns", "?"))
cols[3].metric("speaker switches in the output", m.get("output_switches", "?"))
if m.get("collapsed"):
    st.warning(
        f"The dialogue collapsed into a single speaker's turn: {m.get('output_words')} words, "
        f"{m.get('output_im_end')} <|im_end|> and {m.get('output_im_start')} <|im_start|> markers. "
        f"Most repeated sentence: “{m.get('top_sentence')}” × {m.get('top_sentence_count')}.")

n = st.slider("tokens to show", 5, 60, 25)
st.altair_chart(chart(top_tokens(data, n)), width="stretch")

req = data.get("request", {})
server = data.get("server", {})
st.caption(f"model {server.get('model')}, seed {req.get('seed')}, n_predict {req.get('n_predict')}, "
           f"temperature {req.get('temperature')}, prompt {data.get('prompt_file')}")
with st.expander("generated text"):
    st.text(data.get("text", ""))
control = data.get("control")
if control:
    with st.expander(f"control run, EOS honoured: stopped after {control.get('tokens_predicted')} tokens "
                     f"({control.get('stop_type')})"):
        st.text(control.get("text", ""))
