"""Publishing Parquet snapshots and the read-only catalog that readers open.

Layout under `home`:

    snapshots/<version>/<table>.parquet            a table written whole (the small tables)
    snapshots/<version>/<table>/part-<n>.parquet   the parts of an incremental table (below)
    snapshots/<version>/<table>/keys-<n>.parquet   the keys part <n> replaces in older parts
    snapshots/<version>/manifest.json              what each table is made of, and when
    snapshots/CURRENT                              the name of the newest complete version
    catalog.duckdb                                 views over the CURRENT files (DuckDB 1.5)
    snapshots.pending                              a writer is running (or died: catch up)

A version folder is filled under a temporary name, made read-only (files 0o444, folders 0o555),
renamed, then `CURRENT` and `catalog.duckdb` are swapped in with `os.replace`; readers see the old
set or the new, never half of one. `snapshots/` itself is read-only too except while a publish
runs, so nothing else can add or replace a file in it. Every version is complete: what did not
change is hard-linked from the previous version.

Publishing costs what changed, not what the warehouse holds. The tables that grow with the crawl
(`INCREMENTAL`: `raw_pages`, `comments`, `comment_emotes`) are published as parts: the first
publish writes a table whole (the base part), later ones write one part with the rows written
since the last publish (found by a column every write sets: `landed_at`, `crawled_at`) and link
the older parts. `raw_pages` is append-only (a page lands once), so its parts are disjoint. In
`comments` a newer part replaces the rows of older parts with the same key (a reloaded comment's
likes), and in `comment_emotes` the emote set of every comment written since (so an emote removed
from a comment goes too); the catalog view drops replaced rows with an anti-join on the newer
parts' keys, so every row appears once. Size-tiered compaction keeps the parts few: `FANOUT`
parts of one size merge into one, and once the parts after the base of a keyed table hold more
than a quarter of its rows, the table is written whole again. Each publish checks the published row count against
the warehouse and writes a table whole when they differ (rows changed behind the change column's
back). `emoji_comments` is a catalog view over the published `comments` and `comment_emotes`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from .migrations import DAILY_EMOTIONS_SQL, DAILY_SENTIMENT_SQL, EMOJI_COMMENTS_KEYED_SQL, TREND_FORECAST_OUTCOMES_SQL
from .schema import DERIVED_FROM, EMOJI_COMMENTS_COLUMNS, PUBLISHED, TABLES
from .writer import Warehouse

__all__ = [
    "CATALOG_STORAGE_VERSION",
    "FANOUT",
    "INCREMENTAL",
    "KEEP_VERSIONS",
    "prune_snapshots",
    "table_freshness",
    "Incremental",
    "PublishEvery",
    "catalog_path",
    "current_version_dir",
    "publish_snapshots",
    "snapshots_dir",
    "writer_finished",
    "writer_started",
]

log = logging.getLogger(__name__)

CATALOG_STORAGE_VERSION = "v1.5.0"  # readable by the duckdb-cli 1.5 analysts install
KEEP_VERSIONS = 4  # version folders kept, so readers with an older catalog open keep working
FANOUT = 4  # this many parts of one size tier merge into one
MAX_PARTS = 32  # more parts than this: every part after the base merges into one
MANIFEST_FORMAT = 2
FILE_MODE, FOLDER_MODE = 0o444, 0o555  # published files and version folders: read-only


@dataclass(frozen=True, slots=True)
class Incremental:
    """A table published as parts: only the rows written since the last publish are written.

    `changed` is a TIMESTAMPTZ column that every write of a row sets to the write's time (of
    table `via` when given: `comment_emotes` rows are written with their comment). `key` empty:
    the table is append-only (rows are never updated), so parts never overlap. Otherwise a newer
    part holds every current row of each `key` it lists, replacing the older parts' rows.
    """

    changed: str
    key: tuple[str, ...] = ()
    via: str | None = None


INCREMENTAL: dict[str, Incremental] = {
    "raw_pages": Incremental("landed_at"),  # append-only: every column is `keep` (schema)
    "comments": Incremental("crawled_at", key=("rpid",)),
    "comment_emotes": Incremental("crawled_at", key=("rpid",), via="comments"),
    # one row per listing ever read (every sub-reply thread): grows with the crawl
    "crawl_state": Incremental("updated_at", key=("bvid", "listing")),
    "videos": Incremental("updated_at", key=("bvid",)),
}


def _view_body(create_view_sql: str) -> str:
    match = re.match(r"\s*CREATE\s+(?:OR\s+REPLACE\s+)?VIEW\s+\w+\s+AS\s+(.*)", create_view_sql,
                     re.S | re.I)
    if match is None:
        raise ValueError(f"not a CREATE VIEW statement: {create_view_sql[:60]!r}")
    return match.group(1).strip().rstrip(";")


# Published views computed in the catalog from the published tables (never exported).
CATALOG_VIEWS: dict[str, str] = {
    "emoji_comments": f"SELECT {', '.join(EMOJI_COMMENTS_COLUMNS)} "
    f"FROM ({_view_body(EMOJI_COMMENTS_KEYED_SQL)}) AS keyed",
    "emoji_comments_keyed": _view_body(EMOJI_COMMENTS_KEYED_SQL),  # what emoji training reads
    "daily_sentiment": _view_body(DAILY_SENTIMENT_SQL),
    "daily_emotions": _view_body(DAILY_EMOTIONS_SQL),
    "trend_forecast_outcomes": _view_body(TREND_FORECAST_OUTCOMES_SQL),
}
assert set(CATALOG_VIEWS) == set(DERIVED_FROM), "every derived view needs its catalog SQL"


def snapshots_dir(home: Path) -> Path:
    return Path(home).absolute() / "snapshots"


def catalog_path(home: Path) -> Path:
    return Path(home).absolute() / "catalog.duckdb"


def current_version_dir(home: Path) -> Path | None:
    """The folder `CURRENT` points to, or None before the first publish."""
    pointer = snapshots_dir(home) / "CURRENT"
    try:
        name = pointer.read_text().strip()
    except FileNotFoundError:
        return None
    folder = pointer.parent / name
    return folder if name.isdigit() and folder.is_dir() else None


# -- a writer that died before publishing --------------------------------------------------------

def _unpublished_marker(home: Path) -> Path:
    return Path(home).absolute() / "snapshots.pending"


def writer_started(wh: Warehouse, home: Path) -> None:
    """Note that a writing command runs. When the one before it died (`kill -9`) with changes it
    never published, mark every table changed, so this command's first publish catches up."""
    marker = _unpublished_marker(home)
    if marker.exists():
        log.info("the last writer (%s) ended without publishing: every table is published again",
                 marker.read_text().strip() or "?")
        wh.mark_changed(*TABLES)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"{wh.command} (pid {os.getpid()})\n")


def writer_finished(home: Path) -> None:
    """Everything the writer committed is published."""
    _unpublished_marker(home).unlink(missing_ok=True)


# -- publishing during a long write ---------------------------------------------------------------

class PublishEvery:
    """Call it after every committed page: it publishes what changed after `pages` pages or
    `seconds` since the last publish, whichever comes first (a crawl's `on_committed`).

    A failed publish is logged and tried again at the next threshold: a crawl that runs for weeks
    does not stop because the snapshot disk was briefly full; its data is in the warehouse.
    """

    def __init__(self, home: Path, *, pages: int, seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if pages < 1 or seconds <= 0:
            raise ValueError("publish every pages >= 1 and seconds > 0")
        self.home, self.pages, self.seconds, self.clock = Path(home), pages, seconds, clock
        self.pending = 0
        self.last = clock()
        self.published: list[Path] = []

    def __call__(self, wh: Warehouse) -> Path | None:
        self.pending += 1
        if self.pending < self.pages and self.clock() - self.last < self.seconds:
            return None
        self.pending, self.last = 0, self.clock()
        if not wh.changed or wh.in_transaction:
            return None
        try:
            folder = publish_snapshots(wh, self.home)
        except Exception:  # noqa: BLE001 - a weeks-long crawl outlives a failed publish
            log.exception("publishing snapshots failed; trying again after %d pages or %.0f s",
                          self.pages, self.seconds)
            return None
        self.published.append(folder)
        return folder


# -- the files of a version ----------------------------------------------------------------------

def _quote(text: str | Path) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _part_file(name: str, seq: int) -> str:
    return f"{name}/part-{int(seq):06d}.parquet"


def _keys_file(name: str, seq: int) -> str:
    return f"{name}/keys-{int(seq):06d}.parquet"


def _files_of(name: str, entry: dict[str, Any]) -> list[str]:
    """Every file of a table's entry, relative to the version folder."""
    if "file" in entry:
        return [f"{name}.parquet"]
    files = []
    for part in entry.get("parts", []):
        files.append(_part_file(name, part["seq"]))
        if part["keys"]:
            files.append(_keys_file(name, part["seq"]))
    return files


def _table_sql(name: str, entry: dict[str, Any], folder: Path) -> str:
    """The SELECT that reads a published table from `folder` as the catalog's view does."""
    if "file" in entry:
        return f"SELECT * FROM read_parquet({_quote(folder / f'{name}.parquet')})"
    spec = INCREMENTAL[name]
    parts = entry["parts"]
    files = ", ".join(_quote(folder / _part_file(name, p["seq"])) for p in parts)
    if not spec.key:
        return f"SELECT * FROM read_parquet([{files}])"
    keys = [_quote(folder / _keys_file(name, p["seq"])) for p in parts if p["keys"]]
    if not keys:
        return f"SELECT * EXCLUDE (_seq) FROM read_parquet([{files}])"
    cols = ", ".join(f'"{k}"' for k in spec.key)
    on = " AND ".join(f'k."{k}" = t."{k}"' for k in spec.key)
    return (
        f"SELECT t.* EXCLUDE (_seq) FROM read_parquet([{files}]) AS t "
        f"ANTI JOIN (SELECT {cols}, max(_seq) AS _newer FROM read_parquet([{', '.join(keys)}]) "
        f"GROUP BY {cols}) AS k ON {on} AND k._newer > t._seq"
    )


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _copy(con: duckdb.DuckDBPyConnection, select: str, target: Path) -> int:
    """Write a SELECT to a Parquet file; the rows written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    rows = con.execute(
        f"COPY ({select}) TO {_quote(target)} (FORMAT parquet, COMPRESSION zstd)"
    ).fetchall()
    return int(rows[0][0]) if rows else 0


def _make_read_only(folder: Path) -> None:
    """Files 0o444, folders 0o555 (the top folder last): nothing in it can be written again."""
    for parent, dirs, files in os.walk(folder, topdown=False):
        for file in files:
            os.chmod(os.path.join(parent, file), FILE_MODE)
        if Path(parent) != folder:
            os.chmod(parent, FOLDER_MODE)
    os.chmod(folder, FOLDER_MODE)


def _remove_tree(folder: Path) -> None:
    """Delete a (read-only) version folder."""
    if not folder.exists():
        return
    for parent, _, _ in os.walk(folder):
        try:
            os.chmod(parent, stat.S_IRWXU)
        except OSError:
            pass
    shutil.rmtree(folder, ignore_errors=True)


# -- one table ------------------------------------------------------------------------------------

def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def _changed_keys_sql(name: str, spec: Incremental, since: str) -> str:
    clock = spec.via or name
    cols = ", ".join(f'"{k}"' for k in spec.key)
    return f"SELECT {cols} FROM {clock} WHERE {spec.changed} > {_quote(since)}::TIMESTAMPTZ"


def _changed_rows_sql(name: str, spec: Incremental, since: str) -> str:
    if spec.via is None:
        return f"SELECT * FROM {name} WHERE {spec.changed} > {_quote(since)}::TIMESTAMPTZ"
    on = " AND ".join(f't."{k}" = k."{k}"' for k in spec.key)
    return (f"SELECT t.* FROM {name} AS t "
            f"SEMI JOIN ({_changed_keys_sql(name, spec, since)}) AS k ON {on}")


def _tier(rows: int) -> int:
    return int(math.log(max(rows, 1), FANOUT))


def _merge_from(parts: list[dict[str, Any]], append_only: bool) -> int | None:
    """How the parts compact: None, keep them; 0, write the table whole again; j, parts[j:]
    become one part. Size-tiered: the newest run of parts no bigger than the newest one's tier
    merges once it has FANOUT parts."""
    rest = parts[1:]
    if not rest:
        return None
    if not append_only and sum(p["rows"] for p in rest) * 4 > parts[0]["rows"]:
        return 0  # the replaced rows would outweigh the base: rewrite it
    if len(parts) > MAX_PARTS:
        return 1
    tier = _tier(rest[-1]["rows"])
    start = len(parts) - 1
    while start > 1 and _tier(parts[start - 1]["rows"]) <= tier:
        start -= 1
    return start if len(parts) - start >= FANOUT else None


@dataclass
class _Outcome:
    entry: dict[str, Any]
    action: str  # "exported", "appended", "compacted", "linked"
    rows: int = 0


class _Publisher:
    """One publish: the warehouse's connection (in one read transaction), the new version's
    staging folder and the previous version's folder and manifest."""

    def __init__(self, con: duckdb.DuckDBPyConnection, staging: Path, seq: int,
                 previous: Path | None, prev_tables: dict[str, Any]) -> None:
        self.con, self.staging, self.seq = con, staging, seq
        self.previous, self.prev_tables = previous, prev_tables

    def count(self, sql: str) -> int:
        return int(self.con.execute(f"SELECT count(*) FROM ({sql})").fetchall()[0][0])

    def link(self, name: str, entry: dict[str, Any]) -> None:
        assert self.previous is not None
        for file in _files_of(name, entry):
            _link_or_copy(self.previous / file, self.staging / file)

    def whole(self, name: str, columns: list, export: bool) -> _Outcome:
        prev = self.prev_tables.get(name)
        if not export and prev is not None and "file" in prev:
            self.link(name, prev)
            return _Outcome(prev, "linked")
        rows = _copy(self.con, f"SELECT * FROM {name}", self.staging / f"{name}.parquet")
        return _Outcome({"file": f"{name}.parquet", "rows": rows, "columns": columns},
                        "exported", rows)

    def base(self, name: str, spec: Incremental, columns: list) -> _Outcome:
        """The table whole, as one part."""
        select = f"SELECT * FROM {name}" if not spec.key else \
            f"SELECT *, {self.seq}::INTEGER AS _seq FROM {name}"
        rows = _copy(self.con, select, self.staging / _part_file(name, self.seq))
        until = self.con.execute(f"SELECT max({spec.changed}) FROM {spec.via or name}").fetchall()
        entry = {"parts": [{"seq": self.seq, "rows": rows, "keys": 0, "since": None}],
                 "rows": rows, "until": _iso(until[0][0]), "columns": columns}
        return _Outcome(entry, "exported", rows)

    def part(self, name: str, spec: Incremental, since: str) -> dict[str, Any]:
        """One part with the rows written after `since` (and, keyed, the keys it replaces)."""
        rows_sql = _changed_rows_sql(name, spec, since)
        if spec.key:
            rows_sql = f"SELECT *, {self.seq}::INTEGER AS _seq FROM ({rows_sql})"
        rows = _copy(self.con, rows_sql, self.staging / _part_file(name, self.seq))
        keys = 0
        if spec.key:
            keys = _copy(self.con, f"SELECT *, {self.seq}::INTEGER AS _seq "
                                   f"FROM ({_changed_keys_sql(name, spec, since)})",
                         self.staging / _keys_file(name, self.seq))
        return {"seq": self.seq, "rows": rows, "keys": keys, "since": since}

    def drop(self, name: str, part: dict[str, Any]) -> None:
        for file in (_part_file(name, part["seq"]), _keys_file(name, part["seq"])):
            (self.staging / file).unlink(missing_ok=True)

    def incremental(self, name: str, spec: Incremental, columns: list, export: bool,
                    whole: bool) -> _Outcome:
        prev = self.prev_tables.get(name)
        if prev is not None and "parts" in prev and not export and not whole:
            self.link(name, prev)
            return _Outcome(prev, "linked")
        if whole or prev is None or prev.get("until") is None or "parts" not in prev:
            return self.base(name, spec, columns)  # (no `until`: it was empty)
        since = prev["until"]
        until = self.con.execute(f"SELECT max({spec.changed}) FROM {spec.via or name}").fetchall()
        actual = self.count(f"SELECT 1 FROM {name}")
        new = self.part(name, spec, since)
        if not new["rows"] and not new["keys"]:
            self.drop(name, new)
            if prev["rows"] != actual:
                return self.mismatch(name, spec, columns, prev["rows"], actual)
            self.link(name, prev)
            return _Outcome(prev, "linked")
        parts = [*prev["parts"], new]
        start = _merge_from(parts, append_only=not spec.key)
        if start == 0:
            self.drop(name, new)
            return self.base(name, spec, columns)
        action, added = "appended", new["rows"]
        if start is not None:
            self.drop(name, new)
            merged = self.part(name, spec, parts[start]["since"])
            parts = [*parts[:start], merged]
            action, added = "compacted", merged["rows"]
        kept = [p for p in parts if p["seq"] != self.seq]
        for p in kept:
            self.link(name, {"parts": [p]})
        entry = {"parts": parts, "rows": 0, "until": _iso(until[0][0]), "columns": columns}
        # the published row count must be the warehouse's: otherwise rows changed unseen
        if not spec.key:
            expected = sum(p["rows"] for p in parts)
        elif start is None:
            on = " AND ".join(f'v."{k}" = k."{k}"' for k in spec.key)
            replaced = self.count(
                f"SELECT 1 FROM ({_table_sql(name, prev, self.previous)}) AS v "
                f"SEMI JOIN ({_changed_keys_sql(name, spec, since)}) AS k ON {on}")
            expected = prev["rows"] - replaced + new["rows"]
        else:
            expected = self.count(_table_sql(name, entry, self.staging))
        if expected != actual:
            for p in parts:
                self.drop(name, p)
            return self.mismatch(name, spec, columns, expected, actual)
        entry["rows"] = actual
        return _Outcome(entry, action, added)

    def mismatch(self, name: str, spec: Incremental, columns: list, expected: int,
                 actual: int) -> _Outcome:
        log.warning("%s: the published parts would hold %d rows, the warehouse has %d (rows "
                    "written without `%s`): publishing it whole", name, expected, actual,
                    spec.changed)
        return self.base(name, spec, columns)


# -- the catalog and the version folders -----------------------------------------------------------

def _write_catalog(home: Path, folder: Path, tables: dict[str, Any], version: str,
                   published_at: str) -> None:
    final = catalog_path(home)
    tmp = final.with_name(final.name + ".tmp")
    for stale in (tmp, tmp.with_name(tmp.name + ".wal")):
        stale.unlink(missing_ok=True)
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH {_quote(tmp)} AS cat (STORAGE_VERSION '{CATALOG_STORAGE_VERSION}')")
        for name in PUBLISHED:
            sql = CATALOG_VIEWS[name] if name in CATALOG_VIEWS else \
                _table_sql(name, tables[name], folder)
            con.execute(f"CREATE VIEW cat.main.{name} AS {sql}")
        con.execute(
            "CREATE VIEW cat.main.snapshot_info AS SELECT "
            f"'{version}' AS version, '{published_at}' AS published_at, "
            f"{_quote(folder)} AS folder"
        )
        con.execute("DETACH cat")
    finally:
        con.close()
    os.chmod(tmp, FILE_MODE)
    os.replace(tmp, final)


def _next_version(root: Path) -> str:
    numbers = [int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit()]
    return f"{max(numbers, default=0) + 1:06d}"


def _prune(root: Path, keep: int) -> None:
    versions = sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit())
    for old in versions[:-keep]:
        _remove_tree(old)
    for leftover in root.glob(".*.tmp"):  # a publish that died half-way
        _remove_tree(leftover)


def table_freshness(home: Path) -> list[dict[str, Any]]:
    """Each published table of the current snapshot: its rows and when they last changed (the
    publish that last wrote it; a view: the latest of the tables it reads)."""
    manifest = _read_manifest(current_version_dir(home)) or {}
    tables = manifest.get("tables", {})
    out = []
    for name, entry in tables.items():
        if "view" in entry:
            times = [tables.get(t, {}).get("changed_at") for t in entry["view"]]
            out.append({"table": name, "rows": None, "changed_at": max((t for t in times if t), default=None)})
        else:
            out.append({"table": name, "rows": entry.get("rows"), "changed_at": entry.get("changed_at")})
    return out


def prune_snapshots(home: Path, keep: int, *, dry_run: bool = False) -> dict[str, int]:
    """Remove all but the newest `keep` snapshot versions (the current one always stays); the
    versions removed and the bytes that freed (files no kept version links to). Call it holding
    the writer: it also removes what a publish that died half-way left. `dry_run`: count only."""
    root = snapshots_dir(home)
    if not root.is_dir():
        return {"versions": 0, "bytes": 0}
    versions = sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit())
    old = versions[:-max(1, keep)]
    kept = {(f.stat().st_ino) for v in versions[-max(1, keep):] for f in v.rglob("*") if f.is_file()}
    freed = sum(f.stat().st_size for v in old for f in v.rglob("*") if f.is_file() and f.stat().st_ino not in kept)
    if not dry_run:
        _prune(root, max(1, keep))
    return {"versions": len(old), "bytes": freed}


def _read_manifest(folder: Path | None) -> dict[str, Any] | None:
    if folder is None:
        return None
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return manifest if manifest.get("format") == MANIFEST_FORMAT else None


def _fingerprint(con: duckdb.DuckDBPyConnection) -> list[list[str]]:
    """The migrations applied, with when: another database, or a migration, changes it."""
    rows = con.execute("SELECT version, applied_at FROM schema_version ORDER BY version").fetchall()
    return [[str(v), str(at)] for v, at in rows]


def _columns(con: duckdb.DuckDBPyConnection) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {}
    for table, column, type_ in con.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' AND table_catalog = current_database() "
        "ORDER BY table_name, ordinal_position"
    ).fetchall():
        out.setdefault(table, []).append([column, type_])
    return out


def _reusable(previous: Path | None, manifest: dict[str, Any] | None, fingerprint: list,
              columns: dict[str, list]) -> dict[str, Any]:
    """The previous version's tables whose files can be linked into the next version."""
    if previous is None or manifest is None or manifest.get("fingerprint") != fingerprint:
        return {}
    out = {}
    for name, entry in manifest.get("tables", {}).items():
        if name in TABLES and entry.get("columns") == columns.get(name) and all(
            (previous / file).is_file() for file in _files_of(name, entry)
        ):
            out[name] = entry
    return out


def _publish(wh: Warehouse, home: Path, root: Path, wanted: set[str], explicit: bool) -> Path:
    previous = current_version_dir(home)
    version = _next_version(root)
    staging = root / f".{version}.tmp"
    _remove_tree(staging)
    staging.mkdir()
    published_at = datetime.now(UTC).isoformat(timespec="seconds")
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "version": version,
        "published_at": published_at,
        "command": wh.command,
        "exported": {},
        "appended": {},
        "compacted": {},
        "linked": [],
        "tables": {},
    }
    with wh.transaction() as con:  # one consistent state for every table
        fingerprint = _fingerprint(con)
        columns = _columns(con)
        prev_tables = _reusable(previous, _read_manifest(previous), fingerprint, columns)
        publisher = _Publisher(con, staging, int(version), previous, prev_tables)
        manifest["fingerprint"] = fingerprint
        for name in PUBLISHED:
            if name in CATALOG_VIEWS:
                manifest["tables"][name] = {"view": list(DERIVED_FROM[name])}
                continue
            export = name in wanted
            if name in INCREMENTAL:
                out = publisher.incremental(name, INCREMENTAL[name], columns[name], export,
                                            whole=explicit and export)
            else:
                out = publisher.whole(name, columns[name], export)
            manifest["tables"][name] = out.entry
            if out.action != "linked" or "changed_at" not in out.entry:  # when its rows last changed
                out.entry["changed_at"] = published_at
            if out.action == "linked":
                manifest["linked"].append(name)
            else:
                manifest[out.action][name] = out.rows
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    _make_read_only(staging)
    folder = root / version
    staging.rename(folder)
    pointer_tmp = root / "CURRENT.tmp"
    pointer_tmp.unlink(missing_ok=True)
    pointer_tmp.write_text(version + "\n")
    os.chmod(pointer_tmp, FILE_MODE)
    os.replace(pointer_tmp, root / "CURRENT")
    _write_catalog(home, folder, manifest["tables"], version, published_at)
    _prune(root, KEEP_VERSIONS)
    return folder


def publish_snapshots(wh: Warehouse, home: Path, tables: Iterable[str] | None = None) -> Path:
    """Publish a new snapshot version and catalog; return the version folder.

    Publishes the tables this `Warehouse` changed since the last publish (`tables`: these, each
    written whole) and links the rest from the previous version, so every version is complete;
    everything is written whole on the first publish, after a migration, or when the previous
    version cannot be used. Reads one consistent state of the warehouse. Call it outside a
    transaction.
    """
    if wh.in_transaction:
        raise RuntimeError("publish_snapshots must run after the transaction commits")
    explicit = tables is not None
    wanted = set(wh.changed if tables is None else tables)
    unknown = wanted - set(PUBLISHED)
    if unknown:
        raise ValueError(f"cannot publish {sorted(unknown)}; published tables: {PUBLISHED}")
    wanted |= {name for name, spec in INCREMENTAL.items() if spec.via in wanted}
    root = snapshots_dir(home)
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)  # writable while this publish runs
    try:
        folder = _publish(wh, Path(home), root, wanted, explicit)
    finally:
        os.chmod(root, FOLDER_MODE)
    wh.changed.clear()
    return folder
