"""LocalOpenAIResource: dagster-openai's resource handing out an in-process local client."""

from pathlib import Path

import dagster as dg
from dagster_openai import OpenAIResource

from fine_tuning.core.prompts import build_messages, parse_answer, response_format
from fine_tuning.core.settings import local_openai_dir
from fine_tuning.lib.local_openai_resource import LocalOpenAIResource

from tests.support.local_openai import BASE_MODEL, jsonl, wait_for
from tests.support.toy_books import CATEGORIES, toy_examples


@dg.asset
def tuned_answer(context: dg.AssetExecutionContext, openai: OpenAIResource) -> dg.MaterializeResult:
    with openai.get_client(context) as client:
        training = client.files.create(file=("train.jsonl", jsonl(toy_examples(40))), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=training.id, suffix="dg")
        job = wait_for(client, job.id)
        reply = client.chat.completions.create(
            model=job.fine_tuned_model,
            messages=build_messages("T", "A", "a haunted ghost story", CATEGORIES),
            response_format=response_format(CATEGORIES),
        )
    return dg.MaterializeResult(metadata={
        "model_name": job.fine_tuned_model,
        "answer": parse_answer(reply.choices[0].message.content, CATEGORIES),
    })


def test_resource_runs_in_dagster_and_records_usage(tmp_path: Path) -> None:
    resource = LocalOpenAIResource(data_dir=str(tmp_path / "store"), job_seconds=0.2)
    assert isinstance(resource, OpenAIResource) and resource.api_key == "local"
    result = dg.materialize([tuned_answer], resources={"openai": resource})
    assert result.success
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    model_name = metadata["model_name"].value
    assert model_name.startswith(f"ft:{BASE_MODEL}:local:dg:")
    assert metadata["answer"].value in CATEGORIES
    # dagster-openai's own usage wrapper saw the chat completion's token counts.
    assert metadata[f"openai.{model_name}.calls"].value == 1
    assert metadata[f"openai.{model_name}.total_tokens"].value > 0
    assert (tmp_path / "store" / "jobs").is_dir()


def test_default_store_is_under_the_workdir() -> None:
    # conftest points FINE_TUNING_WORKDIR at a fresh temporary directory.
    result = dg.materialize([tuned_answer], resources={"openai": LocalOpenAIResource(job_seconds=0.2)})
    assert result.success
    assert any((local_openai_dir() / "jobs").glob("ftjob-*.json"))
