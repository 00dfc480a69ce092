"""The README's run-config reference is generated from the config classes and never stale.

No `from __future__ import annotations` here: Dagster reads the toy asset's config annotation
as a class, not a string.
"""

from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field

from fine_tuning import config_reference
from fine_tuning.config_reference import END_MARKER, START_MARKER, config_rows, render_table

REPO = Path(__file__).resolve().parents[2]


def test_readme_reference_matches_the_code() -> None:
    assert config_reference.main(["--check"]) == 0, "run: python -m fine_tuning.config_reference"


def test_check_fails_on_a_stale_readme_and_writing_fixes_it(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# intro\n\n{START_MARKER}\n| old | table |\n{END_MARKER}\n\n## after\n")

    assert config_reference.main(["--check", "--readme", str(readme)]) == 1
    assert config_reference.main(["--readme", str(readme)]) == 0
    assert config_reference.main(["--check", "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# intro\n") and text.endswith("## after\n")
    assert "| old | table |" not in text
    # Every field outside tools set is in the table, under its run-config path.
    for path in ("resources.tuning.config.base_model", "ops.training_files.config.validation_fraction",
                 "ops.fine_tuned_model.config.poll_interval_seconds",
                 "ops.fine_tuned_model_fine_tuned_model_accuracy.config.concurrency",
                 "ops.book_category.config.categories", "ops.enriched_graphic_novels.config.min_description_chars"):
        assert f"| `{path}` |" in text, path


class Inner(dg.Config):
    depth: int = Field(default=2, description="How deep.")


class ToyConfig(dg.Config):
    mode: Literal["online", "batch"] = Field(default="online", description="How | to ask.")
    labels: list[str] = Field(default_factory=lambda: ["a", "b"], description="Computed default.")
    cap: int | None = Field(default=None, description="Optional cap.")
    rate: float = Field(default=0.5, description="A rate.")
    name: str = Field(description="Required.")
    inner: Inner = Field(default_factory=Inner)


class ToyResource(dg.ConfigurableResource):
    budget: float = Field(default=1.0, description="Dollars.")


def test_rows_follow_types_defaults_and_nesting_of_any_config_class() -> None:
    @dg.asset
    def toy(config: ToyConfig, tuning: ToyResource) -> None:
        """An asset with every kind of field."""

    job = dg.Definitions(assets=[toy], resources={"tuning": ToyResource()},
                         jobs=[dg.define_asset_job("toy_job")]).resolve_job_def("toy_job")
    rows = {row.path: row for row in config_rows(job)}

    assert rows["ops.toy.config.mode"].type_name == "`online` \\| `batch`"
    assert rows["ops.toy.config.mode"].default == '`"online"`'
    assert rows["ops.toy.config.mode"].description == "How \\| to ask."
    assert (rows["ops.toy.config.labels"].type_name, rows["ops.toy.config.labels"].default) == ("list of str", '`["a", "b"]`')
    assert (rows["ops.toy.config.cap"].type_name, rows["ops.toy.config.cap"].default) == ("int or null", "`null`")
    assert (rows["ops.toy.config.rate"].type_name, rows["ops.toy.config.rate"].default) == ("float", "`0.5`")
    assert rows["ops.toy.config.name"].default == "(required)"
    assert rows["ops.toy.config.inner.depth"].default == "`2`"
    assert rows["resources.tuning.config.budget"].type_name == "float"
    table = render_table(list(rows.values()))
    assert table.splitlines()[0] == "| run config path | type | default | description |"


def test_every_other_task_has_the_goodreads_fields_under_its_own_sections() -> None:
    from fine_tuning.config_reference import render_task_table
    from fine_tuning.definitions import defs
    from fine_tuning.lib.task.instances import GOODREADS, project_tasks

    goodreads = {row.path for row in config_rows(defs.resolve_job_def("fine_tuning_job"))}
    table = render_task_table(defs)
    others = {name: task for name, task in project_tasks().items() if name != GOODREADS}
    assert others
    for name, task in others.items():
        rows = config_rows(defs.resolve_job_def(task.job_name_or_default()), (task.keys.tuning_resource,))
        paths = {row.path for row in rows}
        assert all(path.startswith((f"ops.{name}__", f"resources.{name}_tuning.config.")) for path in paths), paths
        as_goodreads = {path.replace(f"ops.{name}__", "ops.").replace(f"resources.{name}_tuning.", "resources.tuning.")
                        for path in paths}
        assert as_goodreads == goodreads - {path for path in goodreads if path.startswith(
            ("ops.book_category.", "ops.enriched_graphic_novels."))}  # the same fields, without Goodreads' prep
        assert f"`ops.{name}__fine_tuned_model.config`" in table and f"`resources.{name}_tuning.config`" in table
