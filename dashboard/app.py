"""emopulse dashboard: `streamlit run dashboard/app.py` with `EMOPULSE_HOME` pointing at a home.

Reads the published snapshots only (through `emopulse.warehouse.read`), never the writer's file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from emopulse.dashboard import data

CACHE_TTL_S = 60
MAX_SERIES = 8  # lines in the per-emote chart
HOME = Path(os.environ.get("EMOPULSE_HOME", "var"))

# Reads are cached per home and snapshot version, so a newly published snapshot shows at once;
# the TTL only bounds how long an old version's results stay in memory.


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_headline(home: Path, version: str) -> data.Headline:
    return data.headline(home)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_emoji_shares(home: Path, version: str) -> pd.DataFrame:
    return data.emoji_shares(home)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_top_emotes(home: Path, version: str, n: int) -> pd.DataFrame:
    return data.top_emotes(home, n)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_daily_comments(home: Path, version: str) -> pd.DataFrame:
    return data.daily_comments(home)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_daily_emote_comments(home: Path, version: str, emotes: list[str]) -> pd.DataFrame:
    return data.daily_emote_comments(home, emotes)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_latest_model(home: Path, version: str) -> data.ModelSummary | None:
    return data.latest_model(home)


def metric_label(name: str) -> str:
    """`top1_strict` -> `Top-1 strict`."""
    return re.sub(r"\btop(\d+)", r"Top-\1", name.replace("_", " "))


def format_metric(name: str, value: float) -> str:
    if pd.isna(value):
        return "—"
    if re.search(r"top\d+|acc", name):  # shares in [0, 1]
        return f"{value:.1%}"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4g}"


st.set_page_config(page_title="emopulse", page_icon="📈", layout="wide")
st.title("emopulse")
st.caption("How Bilibili comments feel, told by the emotes people use.")

snap = data.snapshot(HOME)  # not cached: this is how a new snapshot is noticed
if snap is None:
    st.info(
        f"No snapshot yet in `{HOME.absolute()}`.\n\n"
        "Run `emopulse demo` to crawl a bundled sample and train a first model, or `emopulse run` "
        "to run the pipeline with your own settings. The dashboard shows the data as soon as a "
        "snapshot is published; reload this page then.",
        icon="📭",
    )
    st.stop()
version = snap.version

# ---- headline -------------------------------------------------------------------------------
top = load_headline(HOME, version)
cols = st.columns([1, 1, 1, 1.6])
cols[0].metric("Comments", f"{top.comments:,}")
cols[1].metric("Videos", f"{top.videos:,}")
cols[2].metric("Distinct emotes", f"{top.emotes:,}")
cols[3].metric("Snapshot (UTC)", f"{snap.published_at:%Y-%m-%d %H:%M}",
               help=f"version {version}, published {snap.published_at.isoformat()}")

with st.sidebar:
    st.header("Settings")
    top_n = st.slider("Top emotes", min_value=3, max_value=50, value=10, key="top_n")
    per_emote = st.toggle("Split counts over time by top emote", value=False, key="per_emote",
                          help=f"one line per emote, for the top {MAX_SERIES} at most")
    st.caption(f"Home: `{HOME}`")

# ---- emoji distribution ---------------------------------------------------------------------
st.header("Emote distribution")
shares = load_emoji_shares(HOME, version)
ranked = load_top_emotes(HOME, version, top_n)
if shares.empty:
    st.info("No emotes in the cleaned comments yet.")
else:
    left, right = st.columns(2)
    with left:
        st.subheader("Share of comments")
        pie = (
            alt.Chart(shares.assign(position=range(len(shares))))  # largest first, `others` last
            .mark_arc(innerRadius=70)
            .encode(
                theta=alt.Theta("count:Q", stack=True),
                color=alt.Color("emoji_name:N", sort=shares.emoji_name.tolist(), title="Emote"),
                order=alt.Order("position:Q"),
                tooltip=[
                    alt.Tooltip("emoji_alt:N", title="Emote"),
                    alt.Tooltip("count:Q", title="Comments", format=","),
                    alt.Tooltip("share:Q", title="Share", format=".1%"),
                ],
            )
        )
        st.altair_chart(pie, width="stretch")
    with right:
        st.subheader(f"Top {top_n} emotes")
        bars = (
            alt.Chart(ranked)
            .mark_bar()
            .encode(
                x=alt.X("count:Q", title="Comments"),
                y=alt.Y("emoji_name:N", sort="-x", title=None),
                tooltip=[alt.Tooltip("emoji_alt:N", title="Emote"),
                         alt.Tooltip("count:Q", title="Comments", format=",")],
            )
        )
        st.altair_chart(bars, width="stretch")

# ---- counts over time -----------------------------------------------------------------------
st.header("Comments per day")
st.caption(f"Calendar days in {data.TIMEZONE}.")
if per_emote and not ranked.empty:
    daily = load_daily_emote_comments(HOME, version, ranked.emoji_alt.head(MAX_SERIES).tolist())
    series = alt.Color("emoji_name:N", title="Emote")
else:
    daily = load_daily_comments(HOME, version)
    series = alt.value("#4c78a8")
if daily.empty:
    st.info("No dated comments yet.")
else:
    line = (
        alt.Chart(daily.assign(day=pd.to_datetime(daily.day)))
        .mark_line(point=True)
        .encode(
            # days are dates: read them as UTC so no browser time zone shifts them
            x=alt.X("utcyearmonthdate(day):T", title="Day",
                    axis=alt.Axis(format="%Y-%m-%d", labelAngle=0)),
            y=alt.Y("comments:Q", title="Comments"),
            color=series,
            tooltip=[alt.Tooltip("utcyearmonthdate(day):T", title="Day", format="%Y-%m-%d"),
                     alt.Tooltip("comments:Q", title="Comments", format=",")],
        )
    )
    st.altair_chart(line, width="stretch")

# ---- latest model ---------------------------------------------------------------------------
st.header("Latest model")
model = load_latest_model(HOME, version)
if model is None:
    st.info("No model trained yet: `emopulse run` trains one once there are enough emote comments.")
else:
    st.caption(f"`{model.model_id}` · task **{model.task}** · version **{model.version}**"
               + (f" · trained {model.created_at:%Y-%m-%d %H:%M} UTC" if model.created_at else ""))
    table = data.metric_table(model.metrics)
    ranking = table[table.metric.str.match(r"top\d+")]
    if not ranking.empty:
        for col, row in zip(st.columns(len(ranking.head(4))), ranking.head(4).itertuples(), strict=False):
            gain = (None if pd.isna(row.baseline)
                    else f"{(row.model - row.baseline) * 100:+.1f} pts vs majority")
            col.metric(metric_label(row.metric), f"{row.model:.1%}", delta=gain)
    if table.empty:
        st.info("This model recorded no numeric metrics.")
    else:
        st.dataframe(
            pd.DataFrame({
                "Metric": table.metric.map(metric_label),
                "Model": [format_metric(m, v) for m, v in zip(table.metric, table.model, strict=True)],
                "Majority baseline": [format_metric(m, v)
                                      for m, v in zip(table.metric, table.baseline, strict=True)],
            }),
            hide_index=True,
            width="stretch",
            height="content",
        )
