"""Bench: parse-and-load throughput of recorded Bilibili reply pages into DuckDB.

    .venv/bin/python bench/ingest.py [--videos N] [--repeat N]

Reply pages are first recorded from the bundled local server with the real client (the cursor
listing in time order and the sub-reply threads, in the order the crawler meets them). Then, in
one run, the same pages are parsed (`ingest.bilibili.comment_page_of`) and loaded three ways into
fresh warehouses:

* ours, live: one transaction per page with its raw page and checkpoint (`load_comment_page`),
  exactly as the crawler commits;
* ours, bulk: every page in one transaction (`load_comment_pages`), as a backfill or a rebuild
  from `raw_pages` would;
* a row-by-row select-then-insert loader of the kind MediaCrawler's database store uses (for
  each comment: SELECT it by id, then UPDATE or INSERT; the same for each emote row), one
  statement at a time.

All three must leave the same `comments`, `comment_emotes` and `emotes` (asserted) before the
figures are printed. Throughput counts comment records offered to the loader (a sub-reply seen
in a preview and again in its thread counts twice). Target: bulk over 20,000 comments/s here.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
from emopulse.ingest import BilibiliClient
from emopulse.ingest.bilibili import PAGE_SIZE, comment_page_of, comment_pages, reply_pages
from emopulse.ingest.localserver import serve_local_bilibili
from emopulse.ingest.records import CommentPage, RawPage
from emopulse.warehouse import Warehouse, load_comment_page, load_comment_pages

TARGET_BULK = 20_000  # comments per second
COMPARED = {
    "comments": "SELECT * EXCLUDE (crawled_at) FROM comments ORDER BY rpid",
    "comment_emotes": "SELECT * FROM comment_emotes ORDER BY rpid, emoji_alt",
    "emotes": "SELECT emoji_alt, emoji_name, emote_id, package_id, url FROM emotes "
              "ORDER BY emoji_alt",
}


def record_pages(videos: int) -> list[tuple[str, RawPage]]:
    """`(bvid, raw page)` of every comment page of the `videos` smallest sample videos."""
    recorded: list[tuple[str, RawPage]] = []
    with serve_local_bilibili() as server, BilibiliClient(
        server.url, throttle_s=0, jitter_s=0, backoff_s=0.01
    ) as client:
        chosen = sorted(server.dataset.videos.values(), key=lambda v: v.reply_count)[:videos]
        for video in chosen:
            for page in comment_pages(client, bvid=video.bvid, aid=video.aid):
                previewed: dict[int, int] = {}
                for c in page.comments:
                    previewed[c.root] = previewed.get(c.root, 0) + (c.root != 0)
                for root in page.comments:
                    if not root.root and (root.rcount or 0) > previewed.get(root.rpid, 0):
                        recorded += [(video.bvid, p.raw) for p in reply_pages(
                            client, bvid=video.bvid, aid=video.aid, root=root.rpid)]
                recorded.append((video.bvid, page.raw))
    return recorded


def parsed(recorded: list[tuple[str, RawPage]]) -> Iterator[CommentPage]:
    return (comment_page_of(raw, bvid=bvid) for bvid, raw in recorded)


def ours_live(wh: Warehouse, recorded: list[tuple[str, RawPage]]) -> None:
    for page in parsed(recorded):
        load_comment_page(wh, page)


def ours_bulk(wh: Warehouse, recorded: list[tuple[str, RawPage]]) -> None:
    load_comment_pages(wh, parsed(recorded))


def row_by_row(wh: Warehouse, recorded: list[tuple[str, RawPage]]) -> None:
    """MediaCrawler's pattern: per record, query by id, then insert or update; autocommit."""
    con = wh.con
    for page in parsed(recorded):
        for e in page.emotes:
            if con.execute("SELECT 1 FROM emotes WHERE emoji_alt = ?", [e.emoji_alt]).fetchall():
                con.execute("UPDATE emotes SET emote_id = ?, emoji_name = ?, package_id = ?, "
                            "url = ? WHERE emoji_alt = ?",
                            [e.emote_id, e.emoji_name, e.package_id, e.url, e.emoji_alt])
            else:
                con.execute("INSERT INTO emotes (emoji_alt, emote_id, emoji_name, package_id, url)"
                            " VALUES (?, ?, ?, ?, ?)",
                            [e.emoji_alt, e.emote_id, e.emoji_name, e.package_id, e.url])
        for c in page.comments:
            values = [c.bvid, c.aid, c.root, c.parent, c.mid, c.uname, c.message, c.sentence,
                      c.ctime, c.likes, c.rcount, c.source]
            if con.execute("SELECT 1 FROM comments WHERE rpid = ?", [c.rpid]).fetchall():
                con.execute("UPDATE comments SET bvid = ?, aid = ?, root = ?, parent = ?, "
                            "mid = ?, uname = ?, message = ?, sentence = ?, ctime = ?, likes = ?, "
                            "rcount = ?, source = ?, crawled_at = now() WHERE rpid = ?",
                            [*values, c.rpid])
            else:
                con.execute("INSERT INTO comments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                            "now())", [c.rpid, *values])
            for e in c.emotes:
                key = [e.rpid, e.emoji_alt]
                if con.execute("SELECT 1 FROM comment_emotes WHERE rpid = ? AND emoji_alt = ?",
                               key).fetchall():
                    con.execute("UPDATE comment_emotes SET occurrences = ? WHERE rpid = ? "
                                "AND emoji_alt = ?", [e.occurrences, *key])
                else:
                    con.execute("INSERT INTO comment_emotes VALUES (?, ?, ?, ?, ?, ?)",
                                [*key, e.emoji_name, e.emote_id, e.package_id, e.occurrences])


def timed(name: str, load: Callable[[Warehouse, list], None], recorded: list,
          folder: Path, repeat: int) -> tuple[float, dict[str, pd.DataFrame]]:
    """The best of `repeat` runs into fresh warehouses, and the tables the last one left."""
    best = float("inf")
    for attempt in range(repeat):
        with Warehouse.open(folder / f"{name}-{attempt}.duckdb", command=f"bench {name}") as wh:
            start = time.perf_counter()
            load(wh, recorded)
            best = min(best, time.perf_counter() - start)
            tables = {t: wh.con.execute(sql).df() for t, sql in COMPARED.items()}
    return best, tables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=11, help="sample videos to record (1-11)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of the bulk path (the first warms up); the best counts")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    recorded = record_pages(args.videos)
    pages = list(parsed(recorded))
    records = sum(len(p.comments) for p in pages)
    unique = len({c.rpid for p in pages for c in p.comments})
    print(f"recorded {len(recorded)} pages ({PAGE_SIZE} roots a page and their previews, "
          f"threads apart) of {args.videos} videos in {time.perf_counter() - start:.1f} s: "
          f"{records:,} comment records, {unique:,} distinct comments; "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")

    results = {}
    with tempfile.TemporaryDirectory(prefix="emopulse-bench-") as tmp:
        for name, load, repeat in (("ours, live (a transaction per page)", ours_live, 1),
                                   ("ours, bulk (one transaction)", ours_bulk, args.repeat),
                                   ("row by row, select-then-insert", row_by_row, 1)):
            results[name] = timed(name.split(",")[0].replace(" ", "_") + str(len(results)),
                                  load, recorded, Path(tmp), repeat)
    reference = next(iter(results.values()))[1]
    for name, (_, tables) in results.items():
        for table, frame in reference.items():
            pd.testing.assert_frame_equal(tables[table], frame, obj=f"{name}: {table}")
    print(f"all three loaders left the same tables ({', '.join(COMPARED)}: "
          f"{', '.join(str(len(f)) for f in reference.values())} rows)")

    baseline = results["row by row, select-then-insert"][0]
    for name, (seconds, _) in results.items():
        rate = records / seconds
        print(f"  {name:<38} {seconds:8.2f} s {rate:12,.0f} comments/s "
              f"{baseline / seconds:7.1f}x the row-by-row loader")
    bulk = records / results["ours, bulk (one transaction)"][0]
    verdict = "met" if bulk > TARGET_BULK else "NOT met"
    print(f"target: bulk over {TARGET_BULK:,} comments/s: {verdict} ({bulk:,.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
