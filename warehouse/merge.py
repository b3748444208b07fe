"""Bulk upserts driven by the table specs: Arrow in, one `INSERT ... ON CONFLICT` out."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .schema import TableSpec, table
from .writer import Warehouse

__all__ = ["merge_rows", "upsert_sql"]

_names = itertools.count()


def upsert_sql(
    spec: TableSpec, columns: Sequence[str], source: str, *, dedupe: bool = True
) -> str:
    """The statement merging `source` (a registered relation with `_ord`) into `spec`'s table.

    Incoming rows are deduplicated on the key (the last one wins; `dedupe=False` when the caller
    knows the keys are unique), cast to the table's types, and merged: NULL never overwrites a
    value, `keep` columns keep their first value.
    """
    unknown = [c for c in columns if c not in spec.columns]
    if unknown:
        raise ValueError(f"{spec.name} has no column(s) {unknown}")
    missing_key = [c for c in spec.primary_key if c not in columns]
    if missing_key:
        raise ValueError(f"rows for {spec.name} lack key column(s) {missing_key}")
    names = ", ".join(f'"{c}"' for c in columns)
    casts = ", ".join(f'CAST("{c}" AS {spec.columns[c]}) AS "{c}"' for c in columns)
    key = ", ".join(spec.primary_key)
    sql = f"INSERT INTO {spec.name} ({names}) SELECT {casts} FROM {source}"
    if dedupe:
        sql += f" QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY _ord DESC) = 1"
    updates = [
        f'"{c}" = coalesce(EXCLUDED."{c}", {spec.name}."{c}")'
        for c in columns
        if c not in spec.primary_key and c not in spec.keep
    ]
    action = f"DO UPDATE SET {', '.join(updates)}" if updates else "DO NOTHING"
    return f"{sql} ON CONFLICT ({key}) {action}"


def _as_arrow(rows: pa.Table | pd.DataFrame | Mapping[str, Sequence[Any]]) -> pa.Table:
    if isinstance(rows, pa.Table):
        return rows
    if isinstance(rows, pd.DataFrame):
        return pa.Table.from_pandas(rows, preserve_index=False)
    return pa.table({name: pa.array(list(values)) for name, values in rows.items()})


def _keys_unique(data: pa.Table, key: Sequence[str]) -> bool:
    if len(key) == 1:
        return pc.count_distinct(data.column(key[0]), mode="all").as_py() == data.num_rows
    return len(set(zip(*(data.column(k).to_pylist() for k in key), strict=True))) == data.num_rows


def merge_rows(
    wh: Warehouse, table_name: str, rows: pa.Table | pd.DataFrame | Mapping[str, Sequence[Any]]
) -> int:
    """Upsert a batch (Arrow table, DataFrame or dict of columns) into a `merge` table.

    Returns the number of incoming rows. Runs inside the caller's transaction when there is one.
    """
    spec = table(table_name)
    if spec.write_disposition != "merge":
        raise ValueError(f"{table_name} is rebuilt whole, not merged")
    data = _as_arrow(rows)
    if data.num_rows == 0:
        return 0
    missing_key = [c for c in spec.primary_key if c not in data.column_names]
    dedupe = bool(missing_key) or not _keys_unique(data, spec.primary_key)
    data = data.append_column("_ord", pa.array(range(data.num_rows), pa.int64()))
    name = f"_incoming_{table_name}_{next(_names)}"
    wh.con.register(name, data)
    try:
        columns = [c for c in data.column_names if c != "_ord"]
        sql = upsert_sql(spec, columns, name, dedupe=dedupe)
        with wh.transaction() as con:
            con.execute(sql)
    finally:
        wh.con.unregister(name)
    wh.mark_changed(table_name)
    return data.num_rows
