"""Where a task's examples come from: its DuckDB table or `SELECT`, checked, and read as one view.

Every step reads the source through the temp view `task_examples(example_id, label, fields)`
(`sql/source.sql`), so the split, the files, their checks and the evaluation read the very same
rows. The source's name and columns are identifiers, not values: they are checked against the
source (`check_columns`) and quoted before they reach SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb as duckdb_lib

from fine_tuning.lib.sql import sql_statements

SQL = sql_statements(__package__, "source")


class SourceError(Exception):
    """The source cannot give the task its examples (missing table or column, a statement that is not a SELECT)."""


def quote_identifier(name: str) -> str:
    """`name` as a DuckDB identifier ("..." with inner quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def quote_table(name: str) -> str:
    """A possibly qualified table name (`schema.table`, `db.schema.table`) with each part quoted."""
    return ".".join(quote_identifier(part) for part in name.split("."))


def check_select(sql: str) -> None:
    """SourceError unless `sql` is exactly one SELECT statement (parsed by DuckDB, nothing run)."""
    with duckdb_lib.connect(":memory:") as parser:
        try:
            statements = parser.extract_statements(sql)
        except duckdb_lib.Error as error:
            raise SourceError(f"source.sql does not parse: {error}") from None
    if len(statements) != 1 or statements[0].type != duckdb_lib.StatementType.SELECT:
        kinds = ", ".join(statement.type.name for statement in statements) or "nothing"
        raise SourceError(f"source.sql must be one read-only SELECT statement, got: {kinds}")


@dataclass(frozen=True)
class SourceQuery:
    """The source relation and the columns a task reads from it."""

    table: str | None
    sql: str | None
    id_column: str
    label_column: str
    fields: tuple[str, ...]  # the user template's columns, in order

    def relation(self) -> str:
        """The relation to select from: the quoted table, or the SELECT as a subquery."""
        if self.table:
            return quote_table(self.table)
        return f"({self.sql})"

    def described(self) -> str:
        """How messages name the source."""
        return f"table {self.table}" if self.table else "source.sql"

    def required_columns(self) -> dict[str, str]:
        """Every column the task reads, with the attribute that names it."""
        needed = {self.id_column: "id_column", self.label_column: "label_column"}
        for field in self.fields:
            needed.setdefault(field, "prompt.user_template")
        return needed

    def _statement(self, name: str) -> str:
        fields = ", ".join(f"coalesce(CAST({quote_identifier(f)} AS VARCHAR), '')" for f in self.fields)
        return SQL[name].format(
            relation=self.relation(), id_column=quote_identifier(self.id_column),
            label_column=quote_identifier(self.label_column), fields=fields,
        )

    def columns(self, conn: duckdb_lib.DuckDBPyConnection) -> list[str]:
        """The source's column names (SourceError when the table is missing or the SELECT fails)."""
        try:
            return [row[0] for row in conn.execute(self._statement("source_columns")).fetchall()]
        except duckdb_lib.CatalogException as error:
            raise SourceError(f"{self.described()} cannot be read: {str(error).splitlines()[0]}") from None
        except duckdb_lib.Error as error:
            raise SourceError(f"{self.described()} cannot be read: {error}") from None

    def missing_columns(self, columns: Sequence[str]) -> list[str]:
        """'<attribute>: <column>' for every column the task names that the source lacks."""
        present = set(columns)
        return [f"{attribute} names column {column!r}" for column, attribute in self.required_columns().items()
                if column not in present]

    def check_columns(self, conn: duckdb_lib.DuckDBPyConnection) -> None:
        """SourceError naming every attribute whose column the source lacks."""
        columns = self.columns(conn)
        missing = self.missing_columns(columns)
        if missing:
            raise SourceError(
                f"{self.described()} has no such column: {'; '.join(missing)} (its columns: {', '.join(columns)})"
            )

    def create_view(self, conn: duckdb_lib.DuckDBPyConnection) -> None:
        """Check the columns, then (re)create the temp view `task_examples` on this connection."""
        self.check_columns(conn)
        conn.execute(self._statement("examples_view"))

    def labels_in_data(self, conn: duckdb_lib.DuckDBPyConnection) -> list[str]:
        """Every distinct non-empty label of the source, sorted (after `create_view`)."""
        return [row[0] for row in conn.execute(SQL["labels_in_data"]).fetchall()]

    def content_fingerprint(self, conn: duckdb_lib.DuckDBPyConnection) -> list[int]:
        """Row count and a hash of every row the task reads (after `create_view`)."""
        count, digest = conn.execute(SQL["content_fingerprint"]).fetchone()
        return [int(count), int(digest)]
