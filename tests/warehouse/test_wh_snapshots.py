"""Publishing Parquet snapshots and the read-only catalog."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from emopulse.warehouse import (
    PUBLISHED,
    Warehouse,
    catalog_path,
    current_version_dir,
    mark_video,
    publish_snapshots,
    refresh_emoji_stats,
    upsert_comments,
)
from emopulse.warehouse.snapshots import CATALOG_VIEWS, INCREMENTAL, KEEP_VERSIONS
from wh_builders import make_comment


def test_first_publish_writes_every_table_and_a_catalog(wh: Warehouse, home: Path) -> None:
    upsert_comments(wh, [make_comment(1, "a[doge]", mid="1"), make_comment(2, "b[笑哭]", mid="2")])
    refresh_emoji_stats(wh, min_comments=0)
    folder = publish_snapshots(wh, home)
    assert current_version_dir(home) == folder
    assert (home / "snapshots" / "CURRENT").read_text().strip() == folder.name
    whole = {p.stem for p in folder.glob("*.parquet")}
    in_parts = {p.name for p in folder.iterdir() if p.is_dir()}
    assert in_parts == set(INCREMENTAL)  # raw_pages, comments, comment_emotes: one part each
    assert all(len(list((folder / name).glob("part-*.parquet"))) == 1 for name in in_parts)
    assert whole | in_parts | set(CATALOG_VIEWS) == set(PUBLISHED)
    assert not whole & in_parts
    assert wh.changed == set()
    # a fresh read-only connection to the catalog sees the data through the views
    con = duckdb.connect(str(catalog_path(home)), read_only=True)
    assert con.execute("SELECT count(*) FROM comments").fetchall() == [(2,)]
    assert con.execute("SELECT count(*) FROM emoji_comments").fetchall() == [(2,)]
    assert con.execute("SELECT count(*) FROM emoji_training_set").fetchall() == [(2,)]
    assert con.execute("SELECT version FROM snapshot_info").fetchall() == [(folder.name,)]
    tags = con.execute("SELECT tags FROM duckdb_databases() WHERE NOT internal").fetchall()
    assert tags == [({"storage_version": "v1.5.0+"},)]  # what duckdb-cli 1.5 can open
    con.close()


def test_catalog_opens_in_another_process_while_the_writer_is_open(
    wh: Warehouse, home: Path
) -> None:
    upsert_comments(wh, [make_comment(1, "a[doge]")])
    publish_snapshots(wh, home)
    code = (
        "import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
        "print(con.execute('SELECT count(*) FROM comment_emotes').fetchall()[0][0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(catalog_path(home))],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == "1"


def test_unchanged_tables_are_linked_from_the_previous_version(wh: Warehouse, home: Path) -> None:
    upsert_comments(wh, [make_comment(1, "a[doge]"), *(make_comment(i, "x[doge]") for i in range(10, 30))])
    first = publish_snapshots(wh, home)
    mark_video(wh, "BV1test", "deleted")
    second = publish_snapshots(wh, home)
    manifest = json.loads((second / "manifest.json").read_text())
    assert set(manifest["exported"]) == {"videos"} and not manifest["appended"]
    assert (second / "models.parquet").stat().st_ino == (first / "models.parquet").stat().st_ino
    part = "comments/part-{:06d}.parquet".format(int(first.name))
    assert (second / part).stat().st_ino == (first / part).stat().st_ino
    upsert_comments(wh, [make_comment(2, "b[doge]")])
    third = publish_snapshots(wh, home)
    manifest = json.loads((third / "manifest.json").read_text())
    assert manifest["appended"] == {"comments": 1, "comment_emotes": 1}  # only the new row
    assert (third / part).stat().st_ino == (first / part).stat().st_ino
    con = duckdb.connect(str(catalog_path(home)), read_only=True)
    assert con.execute("SELECT status FROM videos").fetchall() == [("deleted",)]
    assert con.execute("SELECT count(*) FROM emoji_comments").fetchall() == [(22,)]


def test_old_versions_are_pruned(wh: Warehouse, home: Path) -> None:
    for i in range(KEEP_VERSIONS + 3):
        mark_video(wh, f"BV{i}", "ok")
        last = publish_snapshots(wh, home)
    versions = sorted(p.name for p in (home / "snapshots").iterdir() if p.is_dir())
    assert len(versions) == KEEP_VERSIONS and versions[-1] == last.name


def test_explicit_tables_and_transactions(wh: Warehouse, home: Path) -> None:
    publish_snapshots(wh, home)
    folder = publish_snapshots(wh, home, tables=["models"])
    assert set(json.loads((folder / "manifest.json").read_text())["exported"]) == {"models"}
    with pytest.raises(ValueError, match="cannot publish"):
        publish_snapshots(wh, home, tables=["secrets"])
    with wh.transaction(), pytest.raises(RuntimeError, match="after the transaction"):
        publish_snapshots(wh, home)


def test_the_analysts_duckdb_cli_opens_the_catalog(wh: Warehouse, home: Path) -> None:
    """`duckdb -readonly catalog.duckdb` from duckdb-cli 1.5.x (PyPI) reads the views."""
    cli = Path(sys.executable).with_name("duckdb")
    if not cli.exists():
        pytest.skip("duckdb-cli is not installed (it comes with the test extra)")
    upsert_comments(wh, [make_comment(1, "a[doge]", mid="1"), make_comment(2, "b[doge][笑哭]", mid="2")])
    refresh_emoji_stats(wh, min_comments=0)
    publish_snapshots(wh, home)
    sql = "SELECT emoji_alt, count FROM emoji_counts ORDER BY count DESC, emoji_alt"
    out = subprocess.run([str(cli), "-readonly", "-csv", str(catalog_path(home)), "-c", sql],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "v1.5" in subprocess.run([str(cli), "-version"], capture_output=True, text=True).stdout
    assert out.stdout.splitlines() == ["emoji_alt,count", "[doge],2", '"[笑哭]",1']  # the CLI quotes non-ASCII


def test_the_duckdb_cli_reads_tables_published_in_parts(wh: Warehouse, home: Path) -> None:
    """The views over parts (a reloaded comment replaced, emoji_comments computed) in CLI 1.5."""
    cli = Path(sys.executable).with_name("duckdb")
    if not cli.exists():
        pytest.skip("duckdb-cli is not installed (it comes with the test extra)")
    upsert_comments(wh, [make_comment(i, f"c{i}[doge]", mid=str(i)) for i in range(1, 31)])
    publish_snapshots(wh, home)
    upsert_comments(wh, [make_comment(1, "c1[笑哭]", mid="1"), make_comment(99, "new[doge]", mid="99")])
    folder = publish_snapshots(wh, home)
    assert len(json.loads((folder / "manifest.json").read_text())["tables"]["comments"]["parts"]) == 2
    sql = ("SELECT (SELECT count(*) FROM comments), (SELECT count(*) FROM comment_emotes), "
           "(SELECT string_agg(emoji_alt, ',') FROM comment_emotes WHERE rpid = 1), "
           "(SELECT count(*) FROM emoji_comments WHERE emoji_alt = '[doge]')")
    out = subprocess.run([str(cli), "-readonly", "-csv", "-noheader", str(catalog_path(home)),
                          "-c", sql], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '31,31,"[笑哭]",30'
