"""Staged builds: a family of prep tables (the Goodreads tables) replaced together or not at all.

Each load (a run's root run id: a retry continues its parent's load) builds its tables in a
DuckDB schema of its own (`load_<16 hex>`), so two loads never touch each other's work. Its
steps' connections have the search path `<its schema>, <schemas of the published tables>,
main`: unqualified names are created in its schema and read from its schema first, then from
what is published. When the run's last prep step has staged, publishing points the views
`main.<table>` at the staged tables in one transaction (no copy, no rename: DuckDB cannot move a
table between schemas), drops the tables they replace and records the load in `table_loads`.

Only one load builds at a time: its steps hold a lease in DuckDB (`prep_lease`), taken by its
first prep step, renewed by each, released when it publishes or when a step fails. A step of
another load waits (polling, without holding the file) and fails naming the holder's run when
the wait runs out. A lease whose process is gone (same host, PID not alive), or which is past
its expiry, is taken over; the taker discards the dead load's staging schema. A load's own
publish refuses when its lease was taken over meanwhile, so nothing is ever published from a
build that did not hold the lease throughout, and no step reports a publish it did not do.

Each asset's step runs one sequence (`run_staged_build`): fingerprint its inputs, keep what an
identical earlier build made (`fine_tuning.lib.builds`), else build and stage, then publish
when the run's prep is complete. Only the asset's SQL and metadata differ.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dagster as dg
import duckdb as duckdb_lib
from dagster_duckdb import DuckDBResource

from fine_tuning.lib.builds import (
    REBUILT,
    Record,
    begin_staged_build,
    build_fingerprint,
    forget_kept,
    forget_load,
    kept_build,
    kept_metadata,
    kept_targets,
    mark_kept,
    publish_build,
    stage_build,
)
from fine_tuning.lib.sql import sql_statements
from fine_tuning.lib.warehouse import connection, transaction

SQL = sql_statements(__package__, "staged_build")
UNKNOWN_LOAD = "unknown"
LEASE_SECONDS_ENV = "FINE_TUNING_PREP_LEASE_SECONDS"
LOCK_WAIT_SECONDS_ENV = "FINE_TUNING_PREP_LOCK_WAIT_SECONDS"
# A step renews the lease as it starts and ends; the longest prep step at full Goodreads scale
# takes ~20 s, so 15 minutes only matter when a process on another host died holding it.
DEFAULT_LEASE_SECONDS = 900.0
DEFAULT_LOCK_WAIT_SECONDS = 600.0
POLL_SECONDS = 0.5
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def identifier(name: str) -> str:
    """`name` when it is a plain lower-case identifier (safe to place in SQL text), else ValueError."""
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return name


def with_identifiers(statement: str, **names: str) -> str:
    """A statement with its `{schema}`, `{schemas}`, `{table}` placeholders filled with checked identifiers."""
    for placeholder, value in names.items():
        checked = ",".join(identifier(part) for part in value.split(","))
        statement = statement.replace("{" + placeholder + "}", checked)
    return statement


@dataclass(frozen=True)
class StagedTables:
    """A family of tables published together: each prep asset and the tables it writes, in build order."""

    family: str
    targets: Mapping[str, tuple[str, ...]]

    @property
    def tables(self) -> tuple[str, ...]:
        """Every table of the family, in build order."""
        return tuple(table for tables in self.targets.values() for table in tables)


@dataclass(frozen=True)
class Load:
    """One load of a family's tables: the root run (a retry continues its parent's load)."""

    load_id: str
    run_id: str

    @classmethod
    def of(cls, context: dg.AssetExecutionContext) -> Load:
        """The load the running step belongs to."""
        run = context.run
        return cls(load_id=run.root_run_id or run.run_id, run_id=run.run_id)


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds a family's lease."""

    load_id: str
    run_id: str
    pid: int
    host: str
    acquired_at: Any
    expires_at: Any

    def describe(self) -> str:
        """The holder as a failure message names it."""
        return (f"run {self.run_id} (load {self.load_id}, PID {self.pid} on {self.host}, "
                f"building since {self.acquired_at:%H:%M:%S}, lease until {self.expires_at:%H:%M:%S})")


@dataclass
class StagingConnection:
    """A prep step's connection with the load it builds for and its staging schema."""

    con: duckdb_lib.DuckDBPyConnection
    load: Load
    schema: str
    tables: StagedTables


def _seconds(env: str, default: float) -> float:
    try:
        return max(0.0, float(os.environ.get(env) or default))
    except ValueError:
        return default


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lease_is_free(holder: LeaseHolder | None, expired: bool, load: Load) -> bool:
    """Free for `load`: nobody holds it, this load does, it expired, or its process is gone.

    A holder in this very process with another load is gone too: one process builds one load
    at a time (a test's earlier materialization, a run that failed outside the prep steps).
    """
    if holder is None or holder.load_id == load.load_id or expired:
        return True
    if holder.host != socket.gethostname():
        return False
    return holder.pid == os.getpid() or not _pid_alive(holder.pid)


def lease_holder(con: duckdb_lib.DuckDBPyConnection, family: str) -> tuple[LeaseHolder | None, bool]:
    """The family's lease holder (None: free) and whether its lease expired."""
    row = con.execute(SQL["lease_holder"], {"family": family}).fetchone()
    if row is None:
        return None, False
    return LeaseHolder(*row[:6]), bool(row[6])


def try_take_lease(con: duckdb_lib.DuckDBPyConnection, family: str, load: Load) -> LeaseHolder | None:
    """Take or renew the lease for `load`; returns the live holder instead when another load has it."""
    holder, expired = lease_holder(con, family)
    if not _lease_is_free(holder, expired, load):
        return holder
    con.execute(SQL["take_lease"], {
        "family": family, "load_id": load.load_id, "run_id": load.run_id, "pid": os.getpid(),
        "host": socket.gethostname(), "lease_seconds": _seconds(LEASE_SECONDS_ENV, DEFAULT_LEASE_SECONDS),
    })
    return None


def release_lease(con: duckdb_lib.DuckDBPyConnection, family: str, load: Load) -> None:
    """Let another load build (after publishing, or when a step of this load failed)."""
    con.execute(SQL["release_lease"], {"family": family, "load_id": load.load_id})


def _lock_failure(family: str, holder: LeaseHolder, waited: float) -> dg.Failure:
    return dg.Failure(
        description=(
            f"Another run is building the {family} tables: {holder.describe()}. Waited {waited:.0f} s "
            f"({LOCK_WAIT_SECONDS_ENV}); this step changed nothing. Run it again when that run is done, "
            "or stop that run (a dead run's lease is taken over at once on its host, else when the lease "
            "expires)."
        ),
        metadata={"holder_run_id": holder.run_id, "holder_load_id": holder.load_id, "holder_pid": holder.pid,
                  "holder_host": holder.host, "waited_seconds": round(waited, 1)},
    )


def _discard_abandoned(con: duckdb_lib.DuckDBPyConnection, load: Load, log: Any) -> None:
    """Drop the staging schemas of loads that died or failed (the lease holder alone builds)."""
    for schema, other_load in con.execute(SQL["abandoned_schemas"], {"load_id": load.load_id}).fetchall():
        with transaction(con):
            con.execute(with_identifiers(SQL["drop_schema"], schema=schema))
            con.execute(SQL["forget_schema"], {"schema_name": schema})
            con.execute(SQL["forget_schema_tables"], {"schema_name": schema})
            forget_load(con, other_load)
        log.info(f"discarded the staged tables of load {other_load}: its run ended before publishing")
    for (schema,) in con.execute(SQL["unused_load_schemas"]).fetchall():
        con.execute(with_identifiers(SQL["drop_schema"], schema=schema))


def _staging_schema(con: duckdb_lib.DuckDBPyConnection, load: Load) -> str:
    """The load's staging schema (a new one for a load that has none, or whose last one was published)."""
    row = con.execute(SQL["staging_schema_of_load"], {"load_id": load.load_id}).fetchone()
    if row is not None:
        return identifier(row[0])
    schema = f"load_{uuid.uuid4().hex[:16]}"
    con.execute(SQL["new_staging_schema"], {"schema_name": schema, "load_id": load.load_id, "run_id": load.run_id})
    return schema


def use_schemas(con: duckdb_lib.DuckDBPyConnection, schema: str) -> None:
    """Search path: the load's schema, then where the published tables live, then main."""
    published = [row[0] for row in con.execute(SQL["published_schemas"]).fetchall() if row[0] != schema]
    con.execute(with_identifiers(SQL["search_path"], schemas=",".join([schema, *published, "main"])))


@contextmanager
def staging_connection(
    duckdb: DuckDBResource, load: Load, tables: StagedTables, log: Any
) -> Iterator[StagingConnection]:
    """A connection for one prep step of `load`, holding the family's lease (waiting for it).

    The lease is released when the step fails, so another load may build; a retry of this load
    takes it again and continues its staging (unless another load discarded it meanwhile).
    """
    wait = _seconds(LOCK_WAIT_SECONDS_ENV, DEFAULT_LOCK_WAIT_SECONDS)
    started = time.monotonic()
    announced = False
    while True:
        with connection(duckdb) as con:
            con.execute(SQL["prepare"])
            holder = try_take_lease(con, tables.family, load)
            if holder is None:
                _discard_abandoned(con, load, log)
                schema = _staging_schema(con, load)
                con.execute(with_identifiers(SQL["create_schema"], schema=schema))
                use_schemas(con, schema)
                try:
                    yield StagingConnection(con, load, schema, tables)
                except BaseException:
                    _release_quietly(con, tables.family, load)
                    raise
                return
        waited = time.monotonic() - started
        if waited >= wait:
            raise _lock_failure(tables.family, holder, waited)
        if not announced:
            log.info(f"waiting for {holder.describe()} to publish the {tables.family} tables (up to {wait:.0f} s)")
            announced = True
        time.sleep(POLL_SECONDS)


def _release_quietly(con: duckdb_lib.DuckDBPyConnection, family: str, load: Load) -> None:
    """Release after a failure; a connection the failure broke leaves the lease to its expiry."""
    try:
        con.execute(SQL["use_main"])
        release_lease(con, family, load)
    except duckdb_lib.Error:
        pass


def input_loads(staging: StagingConnection, tables: Iterable[str]) -> dict[str, str]:
    """The load of each of `tables` as this step reads them (staged, else published)."""
    rows = staging.con.execute(SQL["effective_loads"], {"schema_name": staging.schema}).fetchall()
    loads = {name: load_id for name, load_id, _ in rows}
    return {table: loads.get(table, UNKNOWN_LOAD) for table in tables}


def record_staged(staging: StagingConnection, table: str, built_from: Mapping[str, str]) -> None:
    """Record that `table` was staged by the load from inputs of the given loads (inside the step's transaction)."""
    params = {"schema_name": staging.schema, "table_name": table}
    staging.con.execute(SQL["forget_staged"], params)
    staging.con.execute(SQL["record_staged"], {
        **params, "load_id": staging.load.load_id, "run_id": staging.load.run_id,
        "built_from": json.dumps(dict(sorted(built_from.items()))),
    })


def drop_staged_tables(staging: StagingConnection, target: str) -> None:
    """Before a target is rebuilt: its tables from an earlier attempt of this load go (never a published one)."""
    for table in staging.tables.targets[target]:
        staging.con.execute(with_identifiers(SQL["drop_table"], schema=staging.schema, table=table))
        staging.con.execute(SQL["forget_staged"], {"schema_name": staging.schema, "table_name": table})
    begin_staged_build(staging.con, target)


def prep_assets_of_run(context: dg.AssetExecutionContext, tables: StagedTables) -> set[str]:
    """The family's assets this run materializes (its asset selection, else its whole job)."""
    keys = context.run.asset_selection or context.job_def.asset_layer.selected_asset_keys
    return {key.to_user_string() for key in keys} & set(tables.targets)


def _publish_table(con: duckdb_lib.DuckDBPyConnection, schema: str, table: str) -> None:
    """Point `main.<table>` at the staged table; drop the table it replaces."""
    previous = con.execute(SQL["published_table"], {"table_name": table}).fetchone()
    kind = con.execute(SQL["main_object_type"], {"table_name": table}).fetchone()
    if kind is not None and kind[0] == "BASE TABLE":
        con.execute(with_identifiers(SQL["drop_main_table"], table=table))
    con.execute(with_identifiers(SQL["publish_view"], schema=schema, table=table))
    if previous is not None and previous[2] and previous[2] != schema:
        con.execute(with_identifiers(SQL["drop_table"], schema=previous[2], table=table))
    con.execute(SQL["forget_published"], {"table_name": table})
    con.execute(SQL["publish_record"], {"schema_name": schema, "table_name": table})
    con.execute(SQL["forget_staged"], {"schema_name": schema, "table_name": table})


def publish_when_complete(staging: StagingConnection, context: dg.AssetExecutionContext) -> list[str]:
    """Publish every staged table in one transaction once all prep steps of this run have staged
    (or kept their published tables, their inputs unchanged: `fine_tuning.lib.builds`).

    Returns the tables published (empty while steps of this run are still to come). Raises a
    dg.Failure naming the other run when this load's lease was taken over meanwhile.
    """
    con, load, family = staging.con, staging.load, staging.tables
    staged = {row[0] for row in con.execute(SQL["staged_tables"], {"schema_name": staging.schema}).fetchall()}
    kept = {table for asset in kept_targets(con, load.load_id) for table in family.targets.get(asset, ())}
    needed = {table for asset in prep_assets_of_run(context, family) for table in family.targets[asset]}
    if not needed <= staged | kept:
        try_take_lease(con, family.family, load)  # renew: the load's next step follows
        return []
    published = [table for table in family.tables if table in staged]
    with transaction(con):
        holder = try_take_lease(con, family.family, load)
        if holder is not None:
            raise _lock_failure(family.family, holder, 0.0)
        for table in published:
            _publish_table(con, staging.schema, table)
        for asset, tables in family.targets.items():
            if set(tables) & set(published):
                publish_build(con, asset, load.load_id)  # the build record moves with its tables
        for asset in sorted(prep_assets_of_run(context, family)):
            con.execute(SQL["record_published_run"], {"target": asset, "run_id": load.run_id})
        forget_kept(con, load.load_id)
        con.execute(SQL["forget_schema"], {"schema_name": staging.schema})
        release_lease(con, family.family, load)
        for (schema,) in con.execute(SQL["unused_load_schemas"]).fetchall():
            con.execute(with_identifiers(SQL["drop_schema"], schema=schema))
    stale = stale_tables(published_loads(con))
    if stale:
        context.log.warning(
            f"Published {', '.join(published) or 'nothing new'}; {', '.join(stale)} now come from an earlier "
            "load: materialize them before the training files (which refuse mixed loads)."
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
    rows = con.execute(SQL["published_loads"]).fetchall()
    return {name: (load_id, json.loads(built_from or "{}")) for name, load_id, built_from in rows}


class DatabaseBusy(Exception):
    """The DuckDB file is held by a writing process (a run in progress): what it publishes is being decided."""


def published_runs(database: str) -> dict[str, str]:
    """prep asset -> the latest run whose view of its tables is published, having built or kept them
    (read-only; empty for a database without records).

    For deciding from what is published rather than from what a run reported: a run's
    materializations are recorded as its steps stage, before (and whether or not) its load is
    published. Raises DatabaseBusy while another process holds the file.
    """
    if database != ":memory:" and not database.startswith("md:") and not os.path.exists(database):
        return {}
    try:
        con = duckdb_lib.connect(database, read_only=True)
    except duckdb_lib.IOException as error:
        raise DatabaseBusy(str(error)) from error
    with con:
        if not con.execute(SQL["has_published_runs"]).fetchone()[0]:
            return {}
        return dict(con.execute(SQL["published_runs"]).fetchall())


def stale_tables(loads: Mapping[str, tuple[str, dict[str, str]]]) -> list[str]:
    """Tables built from an input whose published load has changed since."""
    return [
        table for table, (_, inputs) in loads.items()
        if any(loads.get(name, (UNKNOWN_LOAD, {}))[0] != load_id for name, load_id in inputs.items())
    ]


def same_load_problems(con: duckdb_lib.DuckDBPyConnection, table: str) -> list[str]:
    """Why the published `table` and what it was built from do not come from one load (empty: they do)."""
    loads = published_loads(con)
    problems, todo, seen = [], [table], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name not in loads:
            problems.append(f"{name} has no load record (not written by the prep assets of this pipeline version)")
            continue
        for source, load_id in loads[name][1].items():
            now = loads.get(source, (UNKNOWN_LOAD, {}))[0]
            if now != load_id:
                problems.append(f"{name} was built from {source} of load {load_id}, but {source} is now from load {now}")
            todo.append(source)
    return problems


def declare_external_load(con: duckdb_lib.DuckDBPyConnection, tables: Iterable[str]) -> str:
    """Record tables written outside the prep assets (e.g. by hand) as one load; returns its id."""
    load_id = f"external-{uuid.uuid4()}"
    con.execute(SQL["prepare"])
    for table in tables:
        con.execute(SQL["forget_published"], {"table_name": table})
        con.execute(SQL["declare_external"], {"table_name": table, "load_id": load_id})
    return load_id


@dataclass(frozen=True)
class StagedStep:
    """What differs between prep assets: the target, what it is built from, how it is built.

    `inputs(staging)` returns the values the build fingerprint covers (input file versions,
    upstream fingerprints and loads, configuration, SQL); `build(staging)` stages the target's
    tables (recording them with `record_staged`) and returns the metadata to report.
    """

    target: str
    inputs: Callable[[StagingConnection], tuple[Any, ...]]
    build: Callable[[StagingConnection], dict[str, Any]]


def run_staged_build(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, tables: StagedTables, step: StagedStep
) -> dg.MaterializeResult:
    """The one sequence of every prep asset: fingerprint, keep or build and stage, publish when complete."""
    load = Load.of(context)
    with staging_connection(duckdb, load, tables, context.log) as staging:
        fingerprint = build_fingerprint(step.target, *step.inputs(staging))
        kept = kept_build(staging.con, step.target, fingerprint, tables.targets[step.target], load.load_id,
                          staged_schema=staging.schema)
        if kept is not None:
            return dg.MaterializeResult(metadata=kept_result(staging, context, step.target, kept))
        drop_staged_tables(staging, step.target)
        metadata = stage_build(staging.con, step.target, load.load_id, fingerprint, step.build(staging))
        metadata.update(published_metadata(load, publish_when_complete(staging, context)))
    return dg.MaterializeResult(metadata=metadata)


def kept_result(
    staging: StagingConnection, context: dg.AssetExecutionContext, target: str, record: Record
) -> dict[str, object]:
    """What a prep step reports when it keeps its tables (same inputs as their build): the
    recorded metadata, the load that built them, and what this step published (a kept step
    may be the run's last prep step)."""
    if not record.staged:
        mark_kept(staging.con, target, staging.load.load_id)
    table = staging.tables.targets[target][-1]
    metadata = {**kept_metadata(record), **published_metadata(staging.load, publish_when_complete(staging, context))}
    metadata["load_id"] = input_loads(staging, [table])[table]
    metadata[REBUILT] = False
    context.log.info(f"{target}: its inputs are those of the table's last build; kept it (load {metadata['load_id']})")
    return metadata
