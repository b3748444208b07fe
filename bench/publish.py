"""Bench: what publishing snapshots costs after a few crawled pages, as the warehouse grows.

    .venv/bin/python bench/publish.py [--sizes 10000,100000,1000000] [--pages 10] [--rounds 5]

For each size a synthetic warehouse is built in SQL: that many comments (500 a video, a third of
them with emotes), their raw pages (20 comments a page, each page's JSON payload with the
replies' text, member and a few hashes, about 6 KB), videos and checkpoints. It is published once
(the base). Then, `--rounds` times, `--pages` comment pages are loaded as the crawler loads them
(`load_comment_page`: 15 new comments and 5 reloaded ones with new likes a page) and published:

* incremental: `publish_snapshots(wh, home)`, what a crawl does every EMOPULSE_PUBLISH_EVERY_PAGES
  pages (new parts for raw_pages, comments and comment_emotes, the small changed tables whole);
* full re-export: `publish_snapshots(wh, home, tables=PUBLISHED)`, every table written whole, as
  the first publish does and as every publish did before parts (it re-exported each changed table).

The medians are printed, with a read through the catalog (`SELECT count(*), sum(likes) FROM
comments`) after each kind, and the published comments are checked against the warehouse.
Target: the incremental figure at the largest size within 2x of the smallest.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from emopulse.ingest.records import Comment, CommentEmote, CommentPage, RawPage
from emopulse.warehouse import (
    PUBLISHED, Warehouse, catalog_path, load_comment_page, publish_snapshots,
)

PER_VIDEO, PER_PAGE, RELOADED = 500, 20, 5
TARGET_RATIO = 2.0
EMOTES = ["[doge]", "[笑哭]", "[妙啊]", "[吃瓜]", "[呲牙]", "[OK]", "[星星眼]", "[辣眼睛]"]

BUILD = [
    """INSERT INTO videos (bvid, aid, title, reply_count, source, status, discovered_at, updated_at)
       SELECT 'BV' || lpad(i::VARCHAR, 10, '0'), i, 'video ' || i, {per_video}, 'popular', 'ok',
              now(), now() FROM range(1, {videos} + 1) AS t(i)""",
    """INSERT INTO comments
       SELECT i AS rpid, 'BV' || lpad((1 + i % {videos})::VARCHAR, 10, '0'), 1 + i % {videos},
              CASE WHEN i % 4 = 0 THEN i - 1 ELSE 0 END, CASE WHEN i % 4 = 0 THEN i - 1 ELSE 0 END,
              (i * 7919 % 200000)::VARCHAR, 'user' || (i * 7919 % 200000),
              'comment ' || md5(i::VARCHAR) || CASE WHEN i % 3 = 0 THEN ' [doge]' ELSE '' END,
              'comment ' || md5(i::VARCHAR), 1700000000 + i, i % 997, i % 13, 'api:main',
              now() - INTERVAL 1 DAY
       FROM range(1, {comments} + 1) AS t(i)""",
    """INSERT INTO comment_emotes
       SELECT rpid, '[doge]', 'doge', 1, 1, 1 FROM comments WHERE rpid % 3 = 0""",
    """INSERT INTO emotes (emoji_alt, emote_id, emoji_name, package_id, updated_at)
       SELECT e, row_number() OVER (), trim(e, '[]'), 1, now() FROM unnest({emotes}) AS t(e)""",
    """INSERT INTO crawl_state (bvid, listing, cursor, is_end, pages, comments, status, updated_at)
       SELECT bvid, 'main', NULL, true, {per_video} // {per_page}, {per_video}, 'done', now()
       FROM videos""",
    # a sub-reply thread for one comment in ten: crawl_state grows with the crawl, as for real
    """INSERT INTO crawl_state (bvid, listing, cursor, is_end, pages, comments, status, updated_at)
       SELECT bvid, 'reply:' || rpid, NULL, true, 1, 5, 'done', now() - INTERVAL 1 DAY
       FROM comments WHERE rpid % 10 = 0""",
    """INSERT INTO raw_pages
       SELECT rpid // {per_page} AS page_id, '/x/v2/reply/wbi/main',
              json_object('oid', min(aid), 'next', rpid // {per_page}), now() - INTERVAL 1 DAY,
              200, 0,
              json_object('code', 0, 'data', json_object('replies', json_group_array(json_object(
                  'rpid', rpid, 'mid', mid, 'ctime', ctime, 'like', likes,
                  'content', json_object('message', message),
                  'member', json_object('uname', uname, 'sign', md5(mid),
                                        'avatar', 'https://i0.hdslb.com/bfs/face/' || md5(uname)
                                                  || '.jpg'))))),
              NULL, NULL, now() - INTERVAL 1 DAY
       FROM comments GROUP BY rpid // {per_page}""",
]


def build(wh: Warehouse, comments: int) -> None:
    videos = max(1, comments // PER_VIDEO)
    with wh.transaction() as con:
        for sql in BUILD:
            con.execute(sql.format(comments=comments, videos=videos, per_video=PER_VIDEO,
                                   per_page=PER_PAGE, emotes=EMOTES))
    wh.con.execute("CHECKPOINT")


def pages(wh: Warehouse, n: int, first_rpid: int, stored: int, round_: int) -> list[CommentPage]:
    """`n` crawled pages: new comments and reloaded ones (their likes grew), with emotes."""
    out = []
    fetched = datetime.now(UTC)
    for p in range(n):
        bvid, aid = "BV" + "1".zfill(10), 1
        comments = []
        for j in range(PER_PAGE):
            reload = j < RELOADED
            rpid = (1 + (round_ * 7919 + p * 101 + j * 13) % stored) if reload else \
                first_rpid + p * PER_PAGE + j
            emote = EMOTES[(rpid + round_) % len(EMOTES)]
            message = f"comment {rpid} {emote}"
            comments.append(Comment(
                rpid=rpid, message=message, sentence=f"comment {rpid}", source="api:main",
                bvid=bvid, aid=aid, mid=str(rpid % 200000), uname=f"user{rpid % 200000}",
                ctime=1_700_000_000 + rpid, likes=1000 + round_, rcount=0,
                emotes=(CommentEmote(rpid, emote, emote[1:-1], emote_id=1, package_id=1),)))
        body = json.dumps({"code": 0, "data": {"replies": [
            {"rpid": c.rpid, "mid": c.mid, "ctime": c.ctime, "like": c.likes,
             "content": {"message": c.message}, "member": {"uname": c.uname, "sign": "x" * 40,
                                                           "avatar": "https://i0.hdslb.com/a.jpg"}}
            for c in comments]}}, ensure_ascii=False)
        raw = RawPage("/x/v2/reply/wbi/main", {"oid": aid, "round": round_, "page": p}, fetched,
                      200, 0, body)
        out.append(CommentPage(raw, bvid, aid, "main", comments, [], cursor=f"c{round_}-{p}"))
    return out


def read_time(home: Path) -> float:
    con = duckdb.connect(str(catalog_path(home)), read_only=True)
    try:
        start = time.perf_counter()
        con.execute("SELECT count(*), sum(likes) FROM comments").fetchall()
        return time.perf_counter() - start
    finally:
        con.close()


def check(wh: Warehouse, home: Path) -> None:
    sql = "SELECT count(*), sum(likes), sum(rpid) FROM comments"
    want = wh.con.execute(sql).fetchall()
    con = duckdb.connect(str(catalog_path(home)), read_only=True)
    try:
        got = con.execute(sql).fetchall()
        emotes = con.execute("SELECT count(*) FROM comment_emotes").fetchall()
    finally:
        con.close()
    assert got == want, (got, want)
    assert emotes == wh.con.execute("SELECT count(*) FROM comment_emotes").fetchall()


def bench_size(folder: Path, comments: int, n_pages: int, rounds: int) -> dict[str, float]:
    home = folder / f"home-{comments}"
    with Warehouse.open(home / "warehouse.duckdb", command="bench publish") as wh:
        start = time.perf_counter()
        build(wh, comments)
        built = time.perf_counter() - start
        start = time.perf_counter()
        publish_snapshots(wh, home)
        base = time.perf_counter() - start
        size = sum(f.stat().st_size for f in (home / "snapshots").rglob("*.parquet"))
        next_rpid = comments + 1
        incremental, full, reads_inc, reads_full = [], [], [], []
        for r in range(rounds):
            for page in pages(wh, n_pages, next_rpid, comments, r):
                load_comment_page(wh, page)
            next_rpid += n_pages * PER_PAGE
            start = time.perf_counter()
            publish_snapshots(wh, home)
            incremental.append(time.perf_counter() - start)
            check(wh, home)
            reads_inc.append(read_time(home))
        for r in range(rounds, rounds + max(1, rounds // 2)):
            for page in pages(wh, n_pages, next_rpid, comments, r):
                load_comment_page(wh, page)
            next_rpid += n_pages * PER_PAGE
            start = time.perf_counter()
            publish_snapshots(wh, home, tables=PUBLISHED)
            full.append(time.perf_counter() - start)
            check(wh, home)
            reads_full.append(read_time(home))
    return {"built": built, "base": base, "size": size,
            "incremental": statistics.median(incremental), "full": statistics.median(full),
            "read_inc": statistics.median(reads_inc), "read_full": statistics.median(reads_full)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000",
                        help="comma-separated warehouse sizes, in comments")
    parser.add_argument("--pages", type=int, default=10, help="pages crawled before a publish")
    parser.add_argument("--rounds", type=int, default=5, help="incremental publishes per size")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{args.pages} new pages ({PER_PAGE} comments a page, {RELOADED} of them reloaded) "
          f"before each publish; medians of {args.rounds} incremental and "
          f"{max(1, args.rounds // 2)} full publishes; {os.cpu_count()} CPUs, "
          f"Python {sys.version.split()[0]}, DuckDB {duckdb.__version__}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="emopulse-bench-publish-") as tmp:
        for size in sizes:
            results[size] = bench_size(Path(tmp), size, args.pages, args.rounds)
            r = results[size]
            print(f"  built {size:,} comments in {r['built']:.1f} s, first publish "
                  f"{r['base']:.2f} s, {r['size'] / 2**20:.0f} MiB of Parquet", flush=True)
    print()
    print(f"| comments | incremental publish | full re-export | full / incremental "
          f"| read after incremental | read after full |")
    print("| --- | --- | --- | --- | --- | --- |")
    for size, r in results.items():
        print(f"| {size:,} | {r['incremental'] * 1000:.0f} ms | {r['full'] * 1000:.0f} ms | "
              f"{r['full'] / r['incremental']:.1f}x | {r['read_inc'] * 1000:.1f} ms | "
              f"{r['read_full'] * 1000:.1f} ms |")
    small, large = results[sizes[0]], results[sizes[-1]]
    ratio = large["incremental"] / small["incremental"]
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    print(f"target: incremental at {sizes[-1]:,} within {TARGET_RATIO:.0f}x of {sizes[0]:,}: "
          f"{verdict} ({ratio:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
