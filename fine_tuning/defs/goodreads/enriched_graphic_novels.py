"""`enriched_graphic_novels`: the cleaned, one-row-per-book table the training files are built from.

All work happens in DuckDB SQL (`sql/enriched_graphic_novels.sql`; no Python loop over rows);
configuration reaches SQL only as parameters. Duplicate book ids are resolved as in
`book_category` (the temp view `canonical_book_rows`).
"""

from typing import ClassVar

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field, model_validator

from fine_tuning.core import settings
from fine_tuning.defs.goodreads import GROUP, TABLES_POOL
from fine_tuning.defs.goodreads.authors import authors
from fine_tuning.defs.goodreads.book_category import book_category, category_distribution_markdown
from fine_tuning.defs.goodreads.graphic_novels import SQL as BOOKS_SQL
from fine_tuning.defs.goodreads.graphic_novels import create_canonical_rows_view, graphic_novels
from fine_tuning.defs.goodreads.loads import GOODREADS_TABLES
from fine_tuning.defs.goodreads.source_files import display_source
from fine_tuning.lib.builds import effective_fingerprint
from fine_tuning.lib.run_settings import CheckedConfig, SettingProblem, SettingsError, require_valid_run_settings
from fine_tuning.lib.sql import sql_statements
from fine_tuning.lib.staged_build import (
    StagedStep,
    StagingConnection,
    input_loads,
    record_staged,
    run_staged_build,
)
from fine_tuning.lib.warehouse import table_schema, transaction

SQL = sql_statements(__package__, "enriched_graphic_novels")
UNKNOWN_AUTHOR = "Unknown author"
DROP_REASONS: tuple[str, ...] = ("no_description", "no_category", "no_title")
# What the table is built from (its load record names their loads).
TARGET = "enriched_graphic_novels"
INPUT_TABLES = ("graphic_novels", "authors", "categories", "book_category")
# ~25k tokens: a description longer than this could not fit a training example anyway.
MAX_DESCRIPTION_CHARS = 100_000


class EnrichedConfig(CheckedConfig):
    """Bounds on usable descriptions."""

    run_config_path: ClassVar[str] = "ops.enriched_graphic_novels.config"

    min_description_chars: int = Field(
        default=10, ge=1, le=MAX_DESCRIPTION_CHARS,
        description="Cleaned descriptions shorter than this are dropped (1-100000, at most max_description_chars).",
    )
    max_description_chars: int = Field(
        default=4000, ge=1, le=MAX_DESCRIPTION_CHARS,
        description="Cleaned descriptions are cut to this many characters, 1-100000 (bounds token cost).",
    )

    @model_validator(mode="after")
    def _min_not_above_max(self) -> "EnrichedConfig":
        if self.min_description_chars > self.max_description_chars:
            raise SettingsError([SettingProblem(
                self.setting("min_description_chars"), self.min_description_chars,
                f"above {self.setting('max_description_chars')} = {self.max_description_chars}: every description "
                "would be dropped; allowed: min_description_chars <= max_description_chars",
            )])
        return self


@dg.asset(
    deps=[graphic_novels, authors, book_category],
    kinds={"duckdb"},
    group_name=GROUP,
    pool=TABLES_POOL,
    description=(
        "One row per book_id (book_id, title, author, description, category), the input of the "
        "training files. Duplicate ids keep the row with a description, then the most ratings. "
        "Titles and descriptions are plain text (HTML tags and breaks removed, entities decoded, "
        "whitespace collapsed; descriptions cut to max_description_chars). author is the first "
        "author with an empty role, else the first listed; unknown author ids and books without "
        f"authors are kept with author '{UNKNOWN_AUTHOR}'. Dropped and counted: no usable "
        "description (shorter than min_description_chars), no category, no title."
    ),
)
def enriched_graphic_novels(
    context: dg.AssetExecutionContext, config: EnrichedConfig, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    """Write the `enriched_graphic_novels` table and report what was dropped and why.

    Kept as it is when the books, authors, labels, configuration and SQL it was built from are unchanged.
    """
    require_valid_run_settings(context)
    params = {
        "unknown_author": UNKNOWN_AUTHOR,
        "min_description_chars": config.min_description_chars,
        "max_description_chars": config.max_description_chars,
    }

    def inputs(staging: StagingConnection) -> tuple[object, ...]:
        upstream = [effective_fingerprint(staging.con, name, staging.load.load_id)
                    for name in ("graphic_novels", "authors", "book_category")]
        # The inputs' loads too: a rebuilt input (a new load) must not leave a table built from the old one.
        return (*upstream, input_loads(staging, INPUT_TABLES), params, dict(SQL), dict(BOOKS_SQL))

    step = StagedStep(TARGET, inputs, lambda staging: _build(context, staging, params))
    return run_staged_build(context, duckdb, GOODREADS_TABLES, step)


def _build(
    context: dg.AssetExecutionContext, staging: StagingConnection, params: dict[str, object]
) -> dict[str, object]:
    """Stage the table in one transaction (a run that keeps no book leaves the previous table); its metadata."""
    con = staging.con
    con.execute(SQL["clean_text_macros"])
    create_canonical_rows_view(con)
    with transaction(con):
        record_staged(staging, TARGET, input_loads(staging, INPUT_TABLES))
        con.execute(SQL["candidates"], params)
        con.execute(SQL["enriched"])
        candidates, kept, unknown, truncated = con.execute(SQL["counts"]).fetchone()
        dropped = dict(con.execute(SQL["dropped"]).fetchall())
        distribution = con.execute(SQL["distribution"]).fetchall()
        schema = table_schema(con, "enriched_graphic_novels")
        con.execute(SQL["drop_candidates"])
        if kept == 0:
            raise dg.Failure(
                description=(
                    f"no usable books: all {candidates} books of {display_source(settings.books_source())} "
                    f"were dropped ({dropped})"
                ),
                metadata={"source": display_source(settings.books_source()),
                          **{f"dropped_{r}": dropped.get(r, 0) for r in DROP_REASONS}},
            )
    context.log.info(f"enriched_graphic_novels: kept {kept} of {candidates}, dropped {dropped}")
    # Three numbers to plot (the UI plots every number); why rows were dropped or changed in one entry.
    details = {f"dropped_{reason}": dropped.get(reason, 0) for reason in DROP_REASONS}
    details.update(unknown_author_rows=unknown, truncated_descriptions=truncated)
    return {
        "dagster/row_count": kept,
        "books": candidates,
        "rows_dropped": candidates - kept,
        "dagster/column_schema": schema,
        "category_distribution": dg.MetadataValue.md(category_distribution_markdown(distribution)),
        "details": dg.MetadataValue.json(details),
    }
