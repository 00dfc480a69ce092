"""All-or-nothing prep: the Goodreads tables are staged, then published together, and each knows its load.

Every prep step builds its tables in the DuckDB schema `staging` (its connection's search path is
`staging,main`: unqualified names are created in staging and read from staging first). When the
last prep step of a run has staged, all staged tables are copied to `main` in one transaction. A
run that fails half-way leaves `main` exactly as it was; the staged leftovers are discarded when
the next load starts (a retry of the same run keeps them: the load is the root run id).

`table_loads` records, per table, the load that built it and the loads of the tables it was built
from. The training files refuse tables whose record does not match (`same_load_problems`): for
instance an `enriched_graphic_novels` built before `book_category` was replaced.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import dagster as dg
import duckdb as duckdb_lib
from dagster_duckdb import DuckDBResource

from fine_tuning.lib.builds import Record, forget_kept, kept_metadata, kept_targets, mark_kept, publish_build
from fine_tuning.lib.sql import sql_statements
from fine_tuning.lib.warehouse import connection, transaction

SQL = sql_statements(__package__, "loads")
# Each prep asset and the tables it writes, in build order.
PREP_TABLES: dict[str, tuple[str, ...]] = {
    "graphic_novels": ("graphic_novels",),
    "authors": ("authors",),
    "book_category": ("categories", "book_category"),
    "enriched_graphic_novels": ("enriched_graphic_novels",),
}
ALL_TABLES: tuple[str, ...] = tuple(table for tables in PREP_TABLES.values() for table in tables)
UNKNOWN_LOAD = "unknown"


@dataclass(frozen=True)
class Load:
    """One load of the Goodreads tables: the root run (a retry continues its parent's load)."""

    load_id: str
    run_id: str

    @classmethod
    def of(cls, context: dg.AssetExecutionContext) -> Load:
        """The load the running step belongs to."""
        run = context.run
        return cls(load_id=run.root_run_id or run.run_id, run_id=run.run_id)


@contextmanager
def staging_connection(duckdb: DuckDBResource, load: Load) -> Iterator[duckdb_lib.DuckDBPyConnection]:
    """A connection whose unqualified tables live in `staging`, leftovers of other loads discarded."""
    with connection(duckdb) as con:
        con.execute(SQL["prepare"])
        if con.execute(SQL["other_loads_staged"], {"load_id": load.load_id}).fetchone()[0]:
            con.execute(SQL["discard_staging"])  # a run that failed before publishing
            con.execute(SQL["prepare"])
        con.execute(SQL["use_staging"])
        yield con


def input_loads(con: duckdb_lib.DuckDBPyConnection, tables: Iterable[str]) -> dict[str, str]:
    """The load of each of `tables` as this step reads them (staged, else published)."""
    loads = {name: load_id for name, load_id, _ in con.execute(SQL["effective_loads"]).fetchall()}
    return {table: loads.get(table, UNKNOWN_LOAD) for table in tables}


def record_staged(
    con: duckdb_lib.DuckDBPyConnection, table: str, load: Load, built_from: Mapping[str, str]
) -> None:
    """Record that `table` was staged by `load` from inputs of the given loads (inside the step's transaction)."""
    con.execute(SQL["forget_staged"], {"table_name": table})
    con.execute(SQL["record_staged"], {
        "table_name": table, "load_id": load.load_id, "run_id": load.run_id,
        "built_from": json.dumps(dict(sorted(built_from.items()))),
    })


def kept_result(
    con: duckdb_lib.DuckDBPyConnection, context: dg.AssetExecutionContext, load: Load, asset: str, record: Record
) -> dict[str, object]:
    """What a prep step reports when it keeps its tables (same inputs as their build): the
    recorded metadata, the load that built them, and what this step published (a kept step
    may be the run's last prep step)."""
    if not record.staged:
        mark_kept(con, asset, load.load_id)
    table = PREP_TABLES[asset][-1]
    metadata = {**kept_metadata(record), **published_metadata(load, publish_when_complete(con, context, load))}
    metadata["load_id"] = input_loads(con, [table])[table]
    context.log.info(f"{asset}: its inputs are those of the table's last build; kept it (load {metadata['load_id']})")
    return metadata


def prep_assets_of_run(context: dg.AssetExecutionContext) -> set[str]:
    """The prep assets this run materializes (its asset selection, else its whole job)."""
    keys = context.run.asset_selection or context.job_def.asset_layer.selected_asset_keys
    return {key.to_user_string() for key in keys} & set(PREP_TABLES)


def publish_when_complete(con: duckdb_lib.DuckDBPyConnection, context: dg.AssetExecutionContext, load: Load) -> list[str]:
    """Publish every staged table in one transaction once all prep steps of this run have staged
    (or kept their published tables, their inputs unchanged: `fine_tuning.lib.builds`).

    Returns the tables published (empty while steps of this run are still to come).
    """
    staged = {row[0] for row in con.execute(SQL["staged_tables"], {"load_id": load.load_id}).fetchall()}
    kept = {table for asset in kept_targets(con, load.load_id) for table in PREP_TABLES.get(asset, ())}
    needed = {table for asset in prep_assets_of_run(context) for table in PREP_TABLES[asset]}
    if not needed <= staged | kept:
        return []
    published = [table for table in ALL_TABLES if table in staged]
    with transaction(con):
        for table in published:
            con.execute(SQL[f"publish_{table}"])
            con.execute(SQL["forget_published"], {"table_name": table})
            con.execute(SQL["publish_record"], {"table_name": table})
            con.execute(SQL["forget_staged"], {"table_name": table})
        for asset, tables in PREP_TABLES.items():
            if set(tables) & set(published):
                publish_build(con, asset, load.load_id)  # the build record moves with its tables
        forget_kept(con)
    stale = stale_tables(published_loads(con))
    if stale:
        context.log.warning(
            f"Published {', '.join(published)}; {', '.join(stale)} now come from an earlier load: "
            "materialize them before the training files (which refuse mixed loads)."
        )
    return published


def published_metadata(load: Load, published: list[str]) -> dict[str, object]:
    """What a prep asset reports about its load: its id and whether this step published the tables."""
    return {
        "load_id": load.load_id,
        "published": bool(published),
        "published_tables": ", ".join(published) or "none yet (staged; published when the run's last prep step ends)",
    }


def published_loads(con: duckdb_lib.DuckDBPyConnection) -> dict[str, tuple[str, dict[str, str]]]:
    """table -> (load id, {input table: load id}) for every published table with a record."""
    if not con.execute(SQL["has_load_records"]).fetchone()[0]:
        return {}
    return {name: (load_id, json.loads(built_from or "{}")) for name, load_id, built_from in con.execute(SQL["published_loads"]).fetchall()}


def stale_tables(loads: Mapping[str, tuple[str, dict[str, str]]]) -> list[str]:
    """Tables built from an input whose published load has changed since."""
    return [
        table for table, (_, inputs) in loads.items()
        if any(loads.get(name, (UNKNOWN_LOAD, {}))[0] != load_id for name, load_id in inputs.items())
    ]


def same_load_problems(con: duckdb_lib.DuckDBPyConnection, table: str = "enriched_graphic_novels") -> list[str]:
    """Why the published `table` and what it was built from do not come from one load (empty: they do)."""
    loads = published_loads(con)
    problems, todo, seen = [], [table], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name not in loads:
            problems.append(
                f"{name} has no load record (not written by the goodreads assets of this pipeline version)"
            )
            continue
        for source, load_id in loads[name][1].items():
            now = loads.get(source, (UNKNOWN_LOAD, {}))[0]
            if now != load_id:
                problems.append(f"{name} was built from {source} of load {load_id}, but {source} is now from load {now}")
            todo.append(source)
    return problems


def declare_external_load(con: duckdb_lib.DuckDBPyConnection, tables: Iterable[str]) -> str:
    """Record tables written outside the goodreads assets (e.g. by hand) as one load; returns its id."""
    load_id = f"external-{uuid.uuid4()}"
    con.execute(SQL["prepare"])
    for table in tables:
        con.execute(SQL["forget_published"], {"table_name": table})
        con.execute(SQL["declare_external"], {"table_name": table, "load_id": load_id})
    return load_id
