"""`FineTuningTask`: the fine-tuning chain as a `dg` Component, one `defs.yaml` per task.

A task names where its examples come from in DuckDB, its prompt, its labels, its splits, its
base model and budget; the component builds the whole chain from it: split assignment and the
training / validation files with their blocking checks (`training_files`, `file_checks`), the
uploads (`uploads`), `fine_tuned_model`, the accuracy check (`accuracy_check`),
`production_model`, the job, the schedule and the data-change sensor (`automation`). Every key
and name of a task comes from `TaskKeys` (`keys`).

Bad attributes fail when the definitions load (`dg check defs`), naming the attribute and the
`defs.yaml`: an unknown attribute, a template that is not a plain `{column}` template, a
statement that is not one SELECT, an unknown model, and, when the source can already be read, a
column the source lacks. A source that does not exist yet (its prep has never run) is checked
by the first step, before anything is written or uploaded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import dagster as dg
import duckdb as duckdb_lib
from dagster_duckdb import DuckDBResource
from pydantic import Field, PrivateAttr, field_validator, model_validator

from fine_tuning.core.catalog import DEFAULT_BASE_MODEL, catalog_model, fine_tunable_names
from fine_tuning.core.example_files import SplitError
from fine_tuning.core.graders import LOCAL_SIMILARITY_METRICS, GraderError, validate_grader
from fine_tuning.core.grading import DEFAULT_PASS_THRESHOLD, Grading, default_free_form_grader
from fine_tuning.core.lifecycle import DEFAULT_MIN_RUNWAY_DAYS
from fine_tuning.core.promotion import DEFAULT_MAX_P_VALUE, DEFAULT_MIN_IMPROVEMENT
from fine_tuning.core.prompts import Prompt, TemplateError, UserTemplate
from fine_tuning.core.settings import workdir
from fine_tuning.lib.builds import build_fingerprint, published_fingerprint
from fine_tuning.lib.run_settings import SettingsError
from fine_tuning.lib.staged_build import published_loads, same_load_problems
from fine_tuning.lib.task.keys import TaskKeys
from fine_tuning.lib.task.production_model import ProductionModelConfig
from fine_tuning.lib.task.scaffold import FineTuningTaskScaffolder
from fine_tuning.lib.task.source import SourceError, SourceQuery, check_select, quote_identifier, quote_table
from fine_tuning.lib.task.training_files import SplitConfig
from fine_tuning.lib.task.tuning import TuningSettings, tuning_settings_class
from fine_tuning.lib.warehouse import missing_tables

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"

# DuckDB's own default is 80% of the machine's memory; capped, it spills to disk instead.
DUCKDB_CONNECTION_CONFIG = {"memory_limit": "1GB"}


def documented(description: str) -> dg.Resolver:
    """A defaulted attribute's description, where the UI's Docs tab and `dg` read it.

    Dagster's derived schema keeps a defaulted field's description only from its Resolver (it
    drops a pydantic `Field(description=...)` there), so every defaulted attribute carries one.
    """
    return dg.Resolver.default(description=description)


class TaskDefinitionError(ValueError):
    """A `defs.yaml` attribute that cannot make a task; the message names the attribute and the file."""


class Source(dg.Resolvable, dg.Model):
    """Where the task's examples come from in DuckDB."""

    table: Annotated[str | None, documented(
        "A DuckDB table (or view) holding one example per row, e.g. `support_tickets` or "
        "`main.support_tickets`. Exactly one of `table` and `sql`.",
    )] = None
    sql: Annotated[str | None, documented(
        "One read-only SELECT giving one example per row, instead of `table`. Name the "
        "assets it reads in `deps`.",
    )] = None
    deps: Annotated[list[str], documented(
        "Asset keys the source is built by (`a/b` for a prefixed key): the "
        "training files depend on them, the job runs them first, and the sensor watches their data version.",
    )] = Field(default_factory=list)
    database: Annotated[str | None, documented(
        "The task's own DuckDB database: a file under FINE_TUNING_WORKDIR (or an "
        "absolute path), or `md:<name>`. Its splits live there too, so tasks with their own file run side "
        "by side. Null: the project's `duckdb` resource (the Goodreads database). Resource key: `<name>_duckdb`.",
    )] = None
    one_load: Annotated[bool, documented(
        "The source table is built by this project's staged prep, which records "
        "loads (`table_loads`): refuse to split it unless it and every table it was built from come from one load.",
    )] = False

    @model_validator(mode="after")
    def _one_of_table_or_sql(self) -> Source:
        if bool(self.table) == bool(self.sql):
            raise ValueError("source: give exactly one of `table` and `sql`")
        return self


class PromptText(dg.Resolvable, dg.Model):
    """The prompt every example gets, at training and at evaluation time alike."""

    system: str = Field(
        description="The system message: what the model is to do, e.g. `Route each support ticket to the "
        "department that should handle it.`. With a label set the pipeline appends the answer format naming "
        "every label; free-form answers get the system text alone.",
    )
    user_template: str = Field(
        description="The user message, a template over the row's columns: `{column}` is replaced by its value "
        "(NULL as empty), e.g. `Subject: {subject}\\n\\n{body}`. Write a literal brace as `{{` or `}}`.",
    )
    answer_key: Annotated[str | None, documented(
        "The JSON key the model answers under (`{\"<answer_key>\": <label>}`). "
        "Default: the label column's name. Unused by free-form answers (plain text).",
    )] = None


class Splits(dg.Resolvable, dg.Model):
    """How examples are split (the defaults of run config `ops.<prefix>training_files.config`)."""

    seed: Annotated[int, documented("Seed of the deterministic id hash that assigns splits.")] = 42
    validation_fraction: Annotated[float, documented("Share of each label for validation.")] = 0.1
    test_fraction: Annotated[float, documented("Share of each label held out for evaluation.")] = 0.2
    max_train_examples: Annotated[int | None, documented("Cap on training examples (null: no cap).")] = None
    max_validation_examples: Annotated[int | None, documented("Cap on validation examples.")] = 500
    max_test_examples: Annotated[int | None, documented("Cap on test examples.")] = 500


@dg.scaffold_with(FineTuningTaskScaffolder)
class FineTuningTask(dg.Component, dg.Resolvable, dg.Model):
    """A fine-tuned OpenAI chat model that labels the rows of a DuckDB table, kept fresh on a schedule.

    From a table (or a SELECT), an id column, a label column and a prompt template, it builds the
    whole chain: seeded stratified splits, training and validation JSONL files with blocking
    format / token / cost / overlap checks, content-addressed uploads, a resumable fine-tuning
    job, an accuracy check against the base and production models on held-out rows, the
    production model, a job, a schedule and a data-change sensor. Asset keys sit under the key
    prefix `[name]`; the job is `<name>_fine_tuning_job`.
    """

    name: str = Field(
        description="The task's name: its key prefix, group, job (`<name>_fine_tuning_job`), schedule "
        "(`<name>_retune_schedule`), resources and files are named after it. Lowercase letters, digits, `_`.",
    )
    description: Annotated[str | None, documented("What the task is for (shown on its job).")] = None
    source: Source = Field(description="Where the examples come from: `table` or `sql`, `deps`, `database`.")
    id_column: str = Field(description="The column that identifies an example (unique per row).")
    label_column: str = Field(description="The column holding each example's correct answer: its label, or with "
                              "`answers: free_form` the reference answer text the model learns to write.")
    # Descriptions of defaulted attributes go in their Resolver: Dagster's derived model (the UI's Docs
    # tab) takes a defaulted field's description from there only. `grader` and `method` (which may hold
    # a grader) resolve to their value as written: `{{ sample.output_text }}` / `{{ item.field }}` are
    # OpenAI's grader templates, which Dagster's own template rendering would reject.
    answers: Annotated[Literal["labels", "free_form"], dg.Resolver(
        lambda _context, value: value, model_field_type=Literal["labels", "free_form"],
        description="`labels`: every answer is one of a label set (`labels`, `labels_sql` or the "
        "data's), asked for through a strict json_schema enum and scored by exact match. `free_form`: the model "
        "writes text; the training answer is the label column's text, splits are seeded but not stratified, and "
        "the accuracy check scores each answer with `grader`: an answer passes when its grade is at least "
        "`pass_threshold`, accuracy is the share passing (`labels` and `labels_sql` must then be left out).",
    )] = "labels"
    labels: Annotated[list[str] | None, documented(
        "The label set, in the order the prompt lists it. Rows with another label are "
        "left out. Null: every distinct label of the source, sorted (or `labels_sql`).",
    )] = None
    labels_sql: Annotated[str | None, documented(
        "One SELECT returning the label set in prompt order (first column), read at "
        "run time; used when `labels` is null.",
    )] = None
    prompt: PromptText = Field(description="The system text and the user template.")
    splits: Annotated[Splits, documented("Split fractions, caps and seed.")] = Field(default_factory=Splits)
    # `model` in YAML; a field of that name would hide Resolvable.model().
    base_model: Annotated[str, dg.Resolver(
        lambda _context, value: value, model_field_name="model", model_field_type=str,
        description="The base model to fine-tune: a fine-tunable model of the catalog "
        "(fine_tuning/core/catalog.py), or an `ft:` model to continue training.",
    )] = DEFAULT_BASE_MODEL
    method: Annotated[dict[str, Any] | None, dg.Resolver(
        lambda _context, value: value, model_field_type=dict[str, Any] | None,  # its grader's {templates}, as written
        description="The API's `method` object, e.g. `{type: dpo, dpo: {hyperparameters: {beta: 0.1}}}` "
        "or `{type: reinforcement, reinforcement: {hyperparameters: {...}}}` (supervised, auto hyperparameters, by "
        "default). Checked against the documented bounds and the model's methods when the definitions load. "
        "DPO files pair each training example's true answer with the production (or base) model's own wrong "
        "answer; reinforcement files carry the reference answer for the grader.",
    )] = None
    grader: Annotated[dict[str, Any] | None, dg.Resolver(
        lambda _context, value: value, model_field_type=dict[str, Any] | None,  # OpenAI's {{templates}}, as written
        description="The task's grader in OpenAI's JSON shape (string_check, text_similarity, "
        "score_model, multi), reading `{{sample.output_text}}` (the answer) and `{{item.reference_answer}}` (the "
        "label column's answer): the reinforcement method's grader when it names none and, for `answers: "
        "free_form`, the accuracy check's metric (string_check, text_similarity "
        f"({', '.join(LOCAL_SIMILARITY_METRICS)}) and multi over them computed in-process like "
        "/v1/fine_tuning/alpha/graders/run; a grader needing a model is asked of the provider's /graders/run, its "
        "tokens counted, and refused before any file is written where the provider has no grader model, as the "
        "local backend). Null: with labels an "
        "exact-match string_check against the reference answer; free-form a text_similarity fuzzy_match (1.0 "
        "identical text).",
    )] = None
    pass_threshold: Annotated[float | None, dg.Resolver(
        lambda _context, value: value, model_field_type=float | None,
        description="`answers: free_form` only: an answer passes (counts as right for accuracy, "
        f"the paired test and min_improvement) when its grade is at least this. Null: {DEFAULT_PASS_THRESHOLD} "
        "(fuzzy_match: the answer says nearly what the reference says).",
    )] = None
    integrations: Annotated[list[dict[str, Any]] | None, documented(
        "The job's integrations, e.g. `[{type: wandb, wandb: {project: my-project}}]`.",
    )] = None
    metadata: Annotated[dict[str, str] | None, documented(
        "Metadata of the provider job (at most 14 string pairs; the pipeline adds two).",
    )] = None
    suffix: Annotated[str | None, documented("Suffix of the fine-tuned model's name. Default: the name.")] = None
    max_cost_usd: Annotated[float, documented(
        "Training files whose estimated training cost "
        "exceeds this (USD) are blocked before anything is uploaded; a reinforcement job "
        "(billed by training time) is cancelled when its billed time reaches it.",
    )] = 5.0
    min_runway_days: Annotated[int, documented(
        "Refuse, before anything is uploaded, a base model whose "
        "training is retired or that shuts down within this many days (model catalog, or the provider's own "
        "shutdown_date): a model fine-tuned from it would stop answering with it.",
    )] = DEFAULT_MIN_RUNWAY_DAYS
    min_improvement: Annotated[float, documented(
        "How much more accurate than the production model (0..1) a "
        "new model must be to replace it (the smallest gain worth a swap); it must be strictly better in any case.",
    )] = DEFAULT_MIN_IMPROVEMENT
    max_p_value: Annotated[float, documented(
        "A new model replaces the production model only when McNemar's "
        "exact test on the test examples exactly one of them got right gives p below this; 1.0 turns the test off.",
    )] = DEFAULT_MAX_P_VALUE
    schedule: Annotated[str | None, documented(
        "Cron of the re-tuning schedule (RETUNE_CRON overrides it); null: none.",
    )] = "0 3 * * 1"
    schedule_timezone: Annotated[str, documented("Timezone of the schedule (RETUNE_TIMEZONE overrides it).")] = "UTC"
    sensor_interval_seconds: Annotated[int, documented(
        "Seconds between the data-change sensor's ticks "
        "(RETUNE_SENSOR_INTERVAL_SECONDS overrides it).",
    )] = 600
    key_prefix: Annotated[list[str] | None, documented(
        "Asset key prefix. Default `[name]`. The Goodreads task sets `[]` to keep its "
        "original, unprefixed keys and names.",
    )] = None
    group_name: Annotated[str | None, documented("Group of the uploads and models. Default: the name.")] = None
    files_group_name: Annotated[str | None, documented("Group of the training files. Default: the group.")] = None
    splits_table: Annotated[str | None, documented(
        "DuckDB table recording each example's split. "
        "Default: `<name>_splits`.",
    )] = None
    job_name: Annotated[str | None, documented("Default: `<name>_fine_tuning_job`.")] = None
    schedule_name: Annotated[str | None, documented("Default: `<name>_retune_schedule`.")] = None
    sensor_name: Annotated[str | None, documented("Default: `<name>_retune_on_new_data`.")] = None

    _defs_file: str = PrivateAttr(default="defs.yaml")

    @field_validator("name")
    @classmethod
    def _name_is_an_identifier(cls, value: str) -> str:
        if not re.match(NAME_PATTERN, value):
            raise ValueError(f"name {value!r}: lowercase letters, digits and '_', starting with a letter, at most 63")
        return value

    # --- what the steps ask of their task -------------------------------------------------

    @cached_property
    def keys(self) -> TaskKeys:
        """Every key and name of the task."""
        prefix = tuple(self.key_prefix) if self.key_prefix is not None else (self.name,)
        return TaskKeys(self.name, prefix)

    @cached_property
    def template(self) -> UserTemplate:
        """The user template."""
        return UserTemplate(self.prompt.user_template)

    @cached_property
    def source_query(self) -> SourceQuery:
        """The source relation and the columns read from it."""
        return SourceQuery(self.source.table, self.source.sql, self.id_column, self.label_column, self.template.columns())

    def model_group(self) -> str:
        """Group of the uploads, the fine-tuned model and the production model."""
        return self.group_name or self.name

    def files_group(self) -> str:
        """Group of the training and validation files."""
        return self.files_group_name or self.model_group()

    def dep_keys(self) -> list[dg.AssetKey]:
        """The assets the source is built by."""
        return [dg.AssetKey.from_user_string(dep) for dep in self.source.deps]

    def chain_keys(self) -> list[dg.AssetKey]:
        """Every asset of the chain."""
        keys = self.keys
        return [keys.training_file, keys.validation_file, keys.upload_training_file, keys.upload_validation_file,
                keys.fine_tuned_model, keys.production_model]

    def tables_pool(self) -> str:
        """The concurrency pool of the steps that write the task's DuckDB tables (dagster.yaml: one run
        at a time). The Goodreads task's is its prep's, `goodreads_tables`."""
        return f"{self.name}_tables"

    def provider_job_pool(self) -> str:
        """The concurrency pool of the steps that create the task's provider jobs (one run at a time)."""
        return f"{self.name}_provider_job"

    def duckdb_resource_key(self) -> str:
        """`duckdb` (the project's database) unless the task has its own database (`<name>_duckdb`)."""
        return f"{self.name}_duckdb" if self.source.database else "duckdb"

    def duckdb(self, context: Any) -> DuckDBResource:
        """The task's DuckDB resource in a running step."""
        return getattr(context.resources, self.duckdb_resource_key())

    def database_path(self) -> str | None:
        """The task's own database as DuckDB opens it (relative names under FINE_TUNING_WORKDIR)."""
        database = self.source.database
        if not database or database.startswith("md:") or Path(database).is_absolute():
            return database
        return str(workdir() / database)

    def splits_table_name(self) -> str:
        """The DuckDB table recording each example's split."""
        return self.splits_table or f"{self.name}_splits"

    def build_target(self, target: str) -> str:
        """The task's name for a build record (`lib.builds`)."""
        return target if not self.keys.prefix else f"{self.name}/{target}"

    def state_sql(self, statement: str) -> str:
        """A statement naming the task's splits table and id column, with both quoted."""
        return statement.format(splits_table=quote_table(self.splits_table_name()), id_column=quote_identifier(self.id_column))

    def render(self, fields: list[str] | tuple[str, ...]) -> str:
        """The user message of one example from its template columns (in template order)."""
        return self.template.render(dict(zip(self.template.columns(), fields)))

    @property
    def free_form(self) -> bool:
        """Whether the task's answers are free text graded by its grader (not one of a label set)."""
        return self.answers == "free_form"

    def task_grader(self) -> dict[str, Any] | None:
        """The task's grader: its own, else (free-form) fuzzy_match; None for a labelled task naming none
        (the reinforcement method's default is then an exact match)."""
        return self.grader or (default_free_form_grader() if self.free_form else None)

    def grading(self) -> Grading | None:
        """A free-form task's accuracy metric (None with a label set: exact match)."""
        if not self.free_form:
            return None
        threshold = DEFAULT_PASS_THRESHOLD if self.pass_threshold is None else self.pass_threshold
        return Grading(self.task_grader() or default_free_form_grader(), threshold)

    def build_prompt(self, labels: list[str]) -> Prompt:
        """The task's prompt with its label set (free-form: none, and the grading)."""
        return Prompt(tuple(labels), self.prompt.system, self.prompt.answer_key or self.label_column,
                      f"{self.name}_{self.label_column}"[:64] if self.keys.prefix else "book_category",
                      grading=self.grading())

    def open_examples(self, conn: duckdb_lib.DuckDBPyConnection) -> Prompt:
        """Create the `task_examples` view on this connection and return the prompt with its labels.

        Raises SourceError (missing source or column, mixed loads) or SplitError (no labels).
        """
        query = self.source_query
        if self.source.table and missing_tables(conn, [self.source.table.split(".")[-1]]):
            deps = ", ".join(self.source.deps) or "it"
            raise SourceError(f"DuckDB table(s) {self.source.table} missing: materialize {deps} first")
        query.create_view(conn)
        if self.source.one_load:
            self._require_one_load(conn)
        if self.free_form:
            return self.build_prompt([])
        labels = self._labels(conn)
        if not labels:
            raise SplitError(f"no label: {self._labels_origin()} gives an empty label set")
        return self.build_prompt(labels)

    def _labels_origin(self) -> str:
        return "labels" if self.labels else ("labels_sql" if self.labels_sql else f"column {self.label_column}")

    def _labels(self, conn: duckdb_lib.DuckDBPyConnection) -> list[str]:
        if self.labels:
            return list(self.labels)
        if self.labels_sql:
            try:
                return [str(row[0]) for row in conn.execute(self.labels_sql).fetchall() if row[0] is not None]
            except duckdb_lib.Error as error:
                raise SourceError(f"labels_sql cannot be read: {str(error).splitlines()[0]}") from None
        return self.source_query.labels_in_data(conn)

    def _require_one_load(self, conn: duckdb_lib.DuckDBPyConnection) -> None:
        mixed = same_load_problems(conn, str(self.source.table))
        if mixed:
            raise SourceError(
                f"the tables {self.source.table} is built from do not come from one load: " + "; ".join(mixed)
                + f". Materialize {', '.join(self.source.deps) or 'them'} together (the whole job) before the training files"
            )

    def source_fingerprint(self, conn: duckdb_lib.DuckDBPyConnection) -> Any:
        """What the source is, for the training files' build record: the recorded builds (and loads)
        of its deps when this project's prep built them, else a hash of its rows."""
        recorded = [published_fingerprint(conn, dep.path[-1]) for dep in self.dep_keys()]
        if recorded and all(fingerprint is not None for fingerprint in recorded):
            loads: list[Any] = []
            if self.source.one_load:
                published = published_loads(conn)
                loads = [published[dep.path[-1]][0] if dep.path[-1] in published else None for dep in self.dep_keys()]
            return build_fingerprint("source", recorded, loads)
        return self.source_query.content_fingerprint(conn)

    # --- checking the YAML ---------------------------------------------------------------

    def _problem(self, attribute: str, message: str) -> TaskDefinitionError:
        return TaskDefinitionError(f"{self._defs_file}: attributes.{attribute}: {message}")

    def _check_with(self, attribute: str, build: Callable[[], Any]) -> None:
        """Check attributes by building the run-config class they are the defaults of."""
        try:
            build()
        except SettingsError as error:
            problem = error.problems[0]
            field = problem.path.rsplit(".", 1)[-1] if "+" not in problem.path else problem.path
            where = f"{attribute}.{field}" if attribute else field
            raise self._problem(where, f"{problem.value!r}: {problem.allowed}") from None

    def check_attributes(self) -> None:
        """Everything about the attributes that can be checked without the data."""
        try:
            self.template.columns()
        except TemplateError as error:
            raise self._problem("prompt.user_template", str(error)) from None
        for attribute, sql in (("source.sql", self.source.sql), ("labels_sql", self.labels_sql)):
            if sql:
                try:
                    check_select(sql)
                except SourceError as error:
                    raise self._problem(attribute, str(error).replace("source.sql", attribute)) from None
        if not self.base_model.startswith("ft:") and catalog_model(self.base_model) is None:
            raise self._problem("model", f"unknown model {self.base_model!r}: the fine-tunable models are "
                                f"{', '.join(fine_tunable_names())} (or an ft: model)")
        if self.base_model.startswith("ft:") and len(self.base_model.split(":")) < 3:
            raise self._problem("model", f"{self.base_model!r} is not a fine-tuned model name (ft:BASE:ORG:SUFFIX:ID)")
        entry = catalog_model(self.base_model)
        if entry is not None and not entry.fine_tunable:
            raise self._problem("model", f"{self.base_model} cannot be fine-tuned: pick one of {', '.join(fine_tunable_names())}")
        if self.labels is not None and (not self.labels or len(set(self.labels)) != len(self.labels)):
            raise self._problem("labels", "give at least one label, each once (or leave it out to take them from the data)")
        self._check_answers()
        self._check_with("splits", lambda: SplitConfig(**self.splits.model_dump()))
        self._check_method()
        self._check_with("", lambda: TuningSettings(max_cost_usd=self.max_cost_usd, min_runway_days=self.min_runway_days))
        self._check_with("", lambda: ProductionModelConfig(min_improvement=self.min_improvement, max_p_value=self.max_p_value))
        if self.sensor_interval_seconds < 30:
            raise self._problem("sensor_interval_seconds", f"{self.sensor_interval_seconds}: at least 30")
        if not self.prompt.system.strip():
            raise self._problem("prompt.system", "must not be empty")
        suffix = self.suffix or self.name
        if not re.match(r"^[A-Za-z0-9_-]{1,64}$", suffix):
            raise self._problem("suffix", f"{suffix!r}: 1-64 letters, digits, '-' or '_'")

    def _check_method(self) -> None:
        """The method object (to the documented bounds, for this model), the grader, integrations and metadata."""
        try:
            TuningSettings(base_model=self.base_model, method=self.method, grader=self.grader,
                           integrations=self.integrations, job_metadata=self.metadata)
        except SettingsError as error:
            problem = error.problems[0]
            where = problem.path.removeprefix(f"{TuningSettings.run_config_path}.")
            raise self._problem(where, f"{problem.value!r}: {problem.allowed}") from None
        if self.grader is not None:
            try:
                validate_grader(self.grader, "grader")
            except GraderError as error:
                raise self._problem(error.param, error.message) from None

    def _check_answers(self) -> None:
        """Free-form answers take no label set; their pass threshold and grader must make a metric."""
        if not self.free_form:
            if self.pass_threshold is not None:
                raise self._problem("pass_threshold", "only `answers: free_form` has a pass threshold (a label "
                                    "set is scored by exact match); leave it out or set `answers: free_form`")
            return
        for attribute in ("labels", "labels_sql"):
            if getattr(self, attribute) is not None:
                raise self._problem(attribute, "`answers: free_form` takes no label set: its answers are the "
                                    f"{self.label_column} column's text, graded by `grader`; leave {attribute} out")
        if self.pass_threshold is not None and not (-1e9 < self.pass_threshold < 1e9):
            raise self._problem("pass_threshold", f"{self.pass_threshold!r}: a finite number")
        if self.grader is not None:
            try:
                validate_grader(self.grader, "grader")
            except GraderError as error:
                raise self._problem(error.param, error.message) from None

    def check_source_if_readable(self) -> None:
        """The columns the task names, against the source, when the database and the source exist already.

        A database or table that does not exist yet (the prep has never run) or is locked by a run is
        checked by the first step instead, before anything is written or uploaded.
        """
        path = self.database_path() or _project_database()
        if path is None or path.startswith("md:") or not Path(path).is_file():
            return
        try:
            conn = duckdb_lib.connect(path, read_only=True)
        except duckdb_lib.Error:
            return  # locked by a running step, or not a DuckDB file yet: the first step checks
        try:
            if self.source.table and missing_tables(conn, [self.source.table.split(".")[-1]]):
                return
            try:
                columns = self.source_query.columns(conn)
            except SourceError:
                if self.source.sql:
                    return  # it may read tables the prep has not built yet
                raise
            for column, attribute in self.source_query.required_columns().items():
                if column not in columns:
                    raise self._problem(
                        attribute, f"{self.source_query.described()} has no column {column!r} (its columns: "
                        f"{', '.join(columns)})"
                    )
        finally:
            conn.close()

    # --- the definitions ---------------------------------------------------------------------

    def tuning_settings(self) -> TuningSettings:
        """The task's `TuningSettings` resource, its YAML values as defaults."""
        values = dict(
            base_model=self.base_model, suffix=self.suffix or self.name, max_cost_usd=self.max_cost_usd,
            min_runway_days=self.min_runway_days, method=self.method, grader=self.task_grader(),
            integrations=self.integrations, job_metadata=self.metadata,
        )
        return tuning_settings_class(f"resources.{self.keys.tuning_resource}.config", values)(**values)

    def job_name_or_default(self) -> str:
        """The task's job name."""
        return self.job_name or f"{self.name}_fine_tuning_job"

    def schedule_name_or_default(self) -> str:
        """The task's schedule name."""
        return self.schedule_name or f"{self.name}_retune_schedule"

    def sensor_name_or_default(self) -> str:
        """The task's sensor name."""
        return self.sensor_name or f"{self.name}_retune_on_new_data"

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """Every definition of the task: its chain, job, schedule, sensor and resources."""
        self._defs_file = str(Path(context.path) / "defs.yaml")
        return self.definitions()

    def definitions(self) -> dg.Definitions:
        """Every definition of the task, after checking its attributes (and its source, when readable)."""
        from fine_tuning.lib.task.accuracy_check import build_accuracy_check
        from fine_tuning.lib.task.automation import (
            build_job,
            build_schedule,
            build_sensor,
            retune_cron,
            retune_sensor_interval,
            retune_timezone,
        )
        from fine_tuning.lib.task.file_checks import build_file_checks
        from fine_tuning.lib.task.fine_tuned_model import build_fine_tuned_model
        from fine_tuning.lib.task.production_model import build_production_model
        from fine_tuning.lib.task.production_model_lifecycle import build_production_model_lifecycle_check
        from fine_tuning.lib.task.training_files import build_training_files_asset
        from fine_tuning.lib.task.uploads import build_upload_asset

        self.check_attributes()
        self.check_source_if_readable()
        job = build_job(self)
        schedules = []
        if self.schedule:
            cron = retune_cron(self.schedule) if not self.keys.prefix else self.schedule
            schedules.append(build_schedule(self, job, cron, retune_timezone(self.schedule_timezone)))
        resources: dict[str, Any] = {self.keys.tuning_resource: self.tuning_settings()}
        if self.source.database:
            resources[self.duckdb_resource_key()] = DuckDBResource(
                database=str(self.database_path()), connection_config=DUCKDB_CONNECTION_CONFIG
            )
        return dg.Definitions(
            assets=[
                build_training_files_asset(self),
                build_upload_asset(self, "training"),
                build_upload_asset(self, "validation"),
                build_fine_tuned_model(self),
                build_production_model(self),
            ],
            asset_checks=[build_file_checks(self), build_accuracy_check(self), build_production_model_lifecycle_check(self)],
            jobs=[job],
            schedules=schedules,
            sensors=[build_sensor(self, job, retune_sensor_interval(self.sensor_interval_seconds))],
            resources=resources,
        )


def _project_database() -> str | None:
    """The project's DuckDB database (the `duckdb` resource's), as settings resolve it now."""
    from fine_tuning.core.settings import duckdb_database

    return duckdb_database()
