"""Publishing Parquet snapshots and the read-only catalog that readers open.

Layout under `home`:

    snapshots/<version>/<table>.parquet   one complete, consistent set per version
    snapshots/<version>/manifest.json     what was exported, hard-linked or copied, and when
    snapshots/CURRENT                     the name of the newest complete version
    catalog.duckdb                        views over the CURRENT files (DuckDB 1.5 storage)

A version folder is filled under a temporary name, renamed, then `CURRENT` and `catalog.duckdb` are
swapped in with `os.replace`; readers see the old set or the new, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from .schema import DERIVED_FROM, PUBLISHED
from .writer import Warehouse

__all__ = [
    "CATALOG_STORAGE_VERSION",
    "KEEP_VERSIONS",
    "catalog_path",
    "current_version_dir",
    "publish_snapshots",
    "snapshots_dir",
]

CATALOG_STORAGE_VERSION = "v1.5.0"  # readable by the duckdb-cli 1.5 analysts install
KEEP_VERSIONS = 4  # version folders kept, so readers with an older catalog open keep working


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
    return folder if name and folder.is_dir() else None


def _tables_to_export(
    wh: Warehouse, tables: Iterable[str] | None, previous: Path | None
) -> set[str]:
    wanted = set(wh.changed if tables is None else tables)
    unknown = wanted - set(PUBLISHED)
    if unknown:
        raise ValueError(f"cannot publish {sorted(unknown)}; published tables: {PUBLISHED}")
    wanted |= {view for view, parents in DERIVED_FROM.items() if wanted & set(parents)}
    if previous is None:
        return set(PUBLISHED)
    return wanted | {t for t in PUBLISHED if not (previous / f"{t}.parquet").exists()}


def _next_version(root: Path) -> str:
    numbers = [int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit()]
    return f"{max(numbers, default=0) + 1:06d}"


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _write_catalog(home: Path, folder: Path, version: str, published_at: str) -> None:
    final = catalog_path(home)
    tmp = final.with_name(final.name + ".tmp")
    for stale in (tmp, tmp.with_name(tmp.name + ".wal")):
        stale.unlink(missing_ok=True)
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{tmp}' AS cat (STORAGE_VERSION '{CATALOG_STORAGE_VERSION}')")
        for name in PUBLISHED:
            path = str(folder / f"{name}.parquet").replace("'", "''")
            con.execute(f"CREATE VIEW cat.main.{name} AS SELECT * FROM read_parquet('{path}')")
        con.execute(
            "CREATE VIEW cat.main.snapshot_info AS SELECT "
            f"'{version}' AS version, '{published_at}' AS published_at, "
            f"'{str(folder).replace(chr(39), chr(39) * 2)}' AS folder"
        )
        con.execute("DETACH cat")
    finally:
        con.close()
    os.replace(tmp, final)


def _prune(root: Path, keep: int) -> None:
    versions = sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit())
    for old in versions[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for leftover in root.glob(".*.tmp"):  # a publish that died half-way
        shutil.rmtree(leftover, ignore_errors=True)


def publish_snapshots(wh: Warehouse, home: Path, tables: Iterable[str] | None = None) -> Path:
    """Publish a new snapshot version and catalog; return the version folder.

    Exports `tables` (default: those this `Warehouse` changed since the last publish, plus the
    views derived from them; everything on the first publish) and links the rest from the
    previous version, so every version is complete. Call it outside a transaction.
    """
    if wh.in_transaction:
        raise RuntimeError("publish_snapshots must run after the transaction commits")
    root = snapshots_dir(home)
    root.mkdir(parents=True, exist_ok=True)
    previous = current_version_dir(home)
    export = _tables_to_export(wh, tables, previous)
    version = _next_version(root)
    staging = root / f".{version}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    published_at = datetime.now(UTC).isoformat(timespec="seconds")
    manifest = {
        "version": version,
        "published_at": published_at,
        "command": wh.command,
        "exported": {},
        "linked": [],
    }
    for name in PUBLISHED:
        target = staging / f"{name}.parquet"
        if name in export:
            path = str(target).replace("'", "''")
            wh.con.execute(
                f"COPY (SELECT * FROM {name}) TO '{path}' (FORMAT parquet, COMPRESSION zstd)"
            )
            rows = wh.con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]
            manifest["exported"][name] = rows
        else:
            _link_or_copy(previous / f"{name}.parquet", target)
            manifest["linked"].append(name)
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    folder = root / version
    staging.rename(folder)
    pointer_tmp = root / "CURRENT.tmp"
    pointer_tmp.write_text(version + "\n")
    os.replace(pointer_tmp, root / "CURRENT")
    _write_catalog(Path(home), folder, version, published_at)
    _prune(root, KEEP_VERSIONS)
    wh.changed.clear()
    return folder
