"""Record builders shared by the warehouse tests (`from wh_builders import ...`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from emopulse.ingest.records import Comment, CommentEmote, CommentPage, RawPage
from emopulse.warehouse import Warehouse

_TOKEN = re.compile(r"\[[^\[\]]+\]")


def make_comment(
    rpid: int,
    message: str,
    *,
    mid: str | None = None,
    uname: str | None = None,
    ctime: int | None = 1_700_000_000,
    bvid: str | None = "BV1test",
    source: str = "api:main",
) -> Comment:
    """A comment whose emotes are the `[xxx]` tokens of its message."""
    tokens = list(dict.fromkeys(_TOKEN.findall(message)))
    sentence = " ".join(_TOKEN.sub(" ", message).split())
    emotes = tuple(
        CommentEmote(rpid, t, t[1:-1], emote_id=len(t), package_id=1, occurrences=message.count(t))
        for t in tokens
    )
    return Comment(
        rpid=rpid,
        message=message,
        sentence=sentence,
        source=source,
        bvid=bvid,
        mid=mid,
        uname=uname,
        ctime=ctime,
        emotes=emotes,
    )


def make_page(
    comments: list[Comment],
    *,
    cursor: str | None = "c1",
    is_end: bool = False,
    error: str | None = None,
    body: str = '{"code":0,"data":{}}',
    bvid: str = "BV1test",
    listing: str = "main",
    n: int = 0,
) -> CommentPage:
    raw = RawPage(
        "/x/v2/reply/wbi/main",
        {"oid": 42, "page": n},
        datetime(2026, 1, 1, tzinfo=UTC),
        200,
        0 if body.startswith("{") else None,
        body,
    )
    return CommentPage(
        raw,
        bvid,
        42,
        listing,
        comments if not error else [],
        [],
        cursor=cursor,
        is_end=is_end,
        error=error,
    )


def count(wh: Warehouse, table: str) -> int:
    return wh.con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
