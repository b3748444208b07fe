"""With EMOPULSE_PSEUDONYMISE=1, nothing that names a commenter is stored anywhere.

A real crawl of the local server (whose replies carry what Bilibili's do: avatar URLs,
signatures, pendants, medals, the IP region, @-mentions with `content.members` and
`content.at_name_to_mid`), one main page and one thread page cut short on the way; then every
string and number of every table of the warehouse file, every key and value inside its JSON, and
the crawl log are searched for the originals taken from the server's dataset.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb

from emopulse.ingest import Pseudonymiser
from emopulse.ingest.localserver import Fault
from emopulse.ingest.localserver.shapes import member_json, mid_of

from crawlkit import MAIN, REPLY, SMALL, comments_of, crawl, make_settings, server

__all__ = ["make_settings", "server"]  # fixtures

KEY = "privacy-test-key"
_MENTION = re.compile(r"@([^\s@\[\]【】，,。!！?？:：()（）]+)")


def originals(server) -> dict[str, set]:
    """Every commenter and @-mentioned user of the video, as the server sends them."""
    video = server.dataset.videos[SMALL]
    people = {(r.mid, r.uname) for r in video.replies.values()}
    mentioned = {name for r in video.replies.values() for name in _MENTION.findall(r.message)}
    assert mentioned, "the video has @-mentions"
    people |= {(mid_of(name), name) for name in mentioned}
    assert not {video.owner_mid} & {mid for mid, _ in people}  # the uploader is public: not looked for
    profiles = [member_json(mid, name, server.url) for mid, name in people]
    return {
        "mids": {mid for mid, _ in people},
        "unames": {name for _, name in people},
        "texts": {p["avatar"] for p in profiles} | {p["sign"] for p in profiles if p["sign"]}
        | {f"@{name}" for name in mentioned} | {"IP属地"},
    }


def strings_and_numbers(value: Any) -> Iterator[str | int]:
    """Every string and integer inside `value`, JSON text decoded (keys included)."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int):
        yield value
    elif isinstance(value, str):
        yield value
        text = value.strip()
        if text[:1] in ("{", "["):
            try:
                decoded = json.loads(text)
            except ValueError:
                return
            yield from strings_and_numbers(decoded)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings_and_numbers(key)
            yield from strings_and_numbers(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from strings_and_numbers(item)


def leaks(values: Iterator[str | int], found: dict[str, set]) -> list[str]:
    mids, unames, texts = found["mids"], found["unames"], found["texts"]
    mid_text = re.compile(r"(?<!\d)(" + "|".join(map(str, mids)) + r")(?!\d)")
    out = []
    for value in values:
        if isinstance(value, int):
            if value in mids:
                out.append(f"mid {value}")
            continue
        if value in unames or value in {str(m) for m in mids}:
            out.append(f"value {value!r}")
        elif any(t in value for t in texts) or any(f'"{u}"' in value for u in unames):
            out.append(f"inside {value[:120]!r}")
        elif mid_text.search(value):
            out.append(f"mid inside {value[:120]!r}")
    return out


def test_no_commenter_is_stored_anywhere(server, make_settings):
    server.inject(Fault("truncated", at=MAIN), Fault("truncated", at=REPLY))
    settings = make_settings(pseudonymise=True, pseudonymise_key=KEY)
    result = crawl(settings, bvids=[server.dataset.videos[SMALL].bvid])
    assert result["videos"] == 1 and result["errors"] == []
    found = originals(server)

    con = duckdb.connect(str(settings.database), read_only=True)
    try:
        tables = [t for (t,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()]
        rows = {t: con.execute(f'SELECT * FROM "{t}"').fetchall() for t in tables}
        cut_short = con.execute("SELECT count(*) FROM raw_pages WHERE body LIKE '%cut short%'").fetchall()
    finally:
        con.close()
    assert {"raw_pages", "comments"} <= set(rows) and len(rows["raw_pages"]) > 10
    problems = [f"{t}: {p}" for t, table_rows in rows.items()
                for p in leaks(strings_and_numbers(table_rows), found)]
    log = Path(settings.home, "logs", "crawl.jsonl")
    if log.exists():
        problems += [f"log: {p}" for p in leaks(strings_and_numbers(log.read_text("utf-8")), found)
                     + leaks(strings_and_numbers([json.loads(line) for line in
                                                  log.read_text("utf-8").splitlines()]), found)]
    assert problems == []
    assert cut_short == [(2,)]  # both cut-short answers were stored (scrubbed, with a note)

    # what is kept still serves: every comment, its author's pseudonym, the @-mention renamed
    video = server.dataset.videos[SMALL]
    stored = comments_of(settings, video.bvid).set_index("rpid")
    assert set(stored.index) == set(video.replies)
    hasher = Pseudonymiser(KEY)
    for reply in video.replies.values():
        row = stored.loc[reply.rpid]
        assert (row["mid"], row["uname"]) == (hasher.mid(reply.mid), hasher.uname(reply.uname))
        for name in _MENTION.findall(reply.message):
            assert f"@{hasher.uname(name)}" in row["message"]
