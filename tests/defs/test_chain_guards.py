"""The chain's guards with every real part in place: bad training data never reaches the provider."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from fine_tuning.core.checksums import file_sha256
from fine_tuning.core.settings import files_dir, local_openai_dir
from fine_tuning.definitions import defs
from local_openai.transport import local_client

UPSTREAM = ["goodreads_source_dataset", "graphic_novels", "authors", "book_category", "enriched_graphic_novels"]
CHAIN = ["training_file", "validation_file", "upload_training_file", "upload_validation_file", "fine_tuned_model"]


def _run(selection: dg.AssetSelection, instance: dg.DagsterInstance, resources: dict[str, Any]) -> dg.ExecuteInProcessResult:
    job = dg.define_asset_job("guarded", selection=selection, executor_def=dg.in_process_executor)
    scoped = dg.Definitions(
        assets=list(defs.assets or []), asset_checks=list(defs.asset_checks or []),
        jobs=[job], resources={**(defs.resources or {}), **resources},  # the other tasks keep their own
    )
    return scoped.resolve_job_def("guarded").execute_in_process(instance=instance, raise_on_error=False)


def _provider_state() -> tuple[int, int]:
    client = local_client(str(local_openai_dir()))
    return len(list(client.files.list())), len(list(client.fine_tuning.jobs.list()))


def test_a_corrupted_training_file_stops_the_chain_before_any_upload(resources: dict[str, Any]) -> None:
    instance = dg.DagsterInstance.ephemeral()
    prep = _run(dg.AssetSelection.assets(*UPSTREAM, "training_file", "validation_file"), instance, resources)
    assert prep.success

    # The files step produced a bad training file and recorded it: its sha256 matches, so only
    # the blocking checks stand between it and the provider.
    training = Path(files_dir()) / "training.jsonl"
    with training.open("a", encoding="utf-8") as handle:
        handle.write('{"messages": [{"role": "user", "content": "no answer"}]}\n{not json\n')
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key="training_file",
            metadata={"path": str(training), "sha256": file_sha256(training), "examples": 0},
        )
    )

    chain = dg.AssetSelection.assets(*CHAIN[2:]) | dg.AssetSelection.checks_for_assets("training_file", "validation_file")
    result = _run(chain, instance, resources)

    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["training_file_format_check"].passed is False
    assert "invalid_json" in checks["training_file_format_check"].metadata["errors_by_kind"].value
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized.isdisjoint(CHAIN[2:]), materialized
    assert _provider_state() == (0, 0), "nothing may be uploaded or trained from a corrupted file"
