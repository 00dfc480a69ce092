"""The local backend plays each provider: model shutdowns, refused organizations, Azure's shape.

Every test runs in-process and (slow half) over real HTTP; dates come from a stepped clock, never
from today's calendar.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import openai
import pytest

from fine_tuning.core.azure_deployments import AzureAccount, AzureDeployments, deployment_name
from local_openai.options import BackendOptions

from tests.support.local_openai import BASE_MODEL, Backend, Clock, jsonl, train_toy_model, upload
from tests.support.toy_books import toy_examples

DAY = 24 * 3600.0
ACCOUNT = AzureAccount("sub-1", "rg-1", "acct-1", management_endpoint="http://placeholder")


def _day(clock: Clock, days: int = 0) -> str:
    return (datetime.fromtimestamp(clock.now, UTC).date() + timedelta(days=days)).isoformat()


def _chat(client: openai.OpenAI, model: str) -> Any:
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Title: X"}])


def test_a_shutdown_date_is_reported_for_the_model_and_every_model_tuned_from_it(backend: Backend, clock: Clock) -> None:
    client = backend.client(job_seconds=0.0, clock=clock, max_retries=0,
                            model_shutdowns={"gpt-4o-mini": _day(clock, 10)})
    assert client.models.retrieve(BASE_MODEL).shutdown_date == _day(clock, 10)
    assert client.models.retrieve("gpt-4o-2024-08-06").shutdown_date is None
    tuned = train_toy_model(client).fine_tuned_model
    assert client.models.retrieve(tuned).shutdown_date == _day(clock, 10)
    listed = {model.id: model.shutdown_date for model in client.models.list()}
    assert listed[tuned] == _day(clock, 10)


def test_a_shut_down_model_refuses_work_as_openai_does(backend: Backend, clock: Clock) -> None:
    client = backend.client(job_seconds=0.0, clock=clock, max_retries=0,
                            model_shutdowns={"gpt-4o-mini": _day(clock, 3)})
    tuned = train_toy_model(client).fine_tuned_model
    clock.advance(3 * DAY)  # the shutdown day has come
    for model in (BASE_MODEL, tuned):
        with pytest.raises(openai.NotFoundError) as refused:
            _chat(client, model)
        assert refused.value.body == {  # type: ignore[comparison-overlap]
            "message": f"The model `{model}` has been deprecated, learn more here: "
                       "https://platform.openai.com/docs/deprecations",
            "type": "invalid_request_error", "param": "model", "code": "model_not_found"}
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve(model)
    assert tuned not in {model.id for model in client.models.list()}
    file_id = upload(client, jsonl(toy_examples(20)))
    with pytest.raises(openai.BadRequestError, match="not available for fine-tuning"):
        client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=file_id)
    assert _chat(client, "gpt-4o-2024-08-06").choices  # other models still answer


def test_a_refused_organization_gets_a_403_and_no_job(backend: Backend) -> None:
    client = backend.client(job_seconds=0.0, max_retries=0, refuse_fine_tuning=True)
    file_id = upload(client, jsonl(toy_examples(20)))
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=file_id)
    assert "does not have access to create fine-tuning jobs" in refused.value.message
    assert list(client.fine_tuning.jobs.list()) == []
    assert _chat(client, BASE_MODEL).choices  # inference is untouched


def test_the_azure_profile_answers_a_fine_tuned_model_only_through_a_deployment(backend: Backend, clock: Clock) -> None:
    client = backend.client(job_seconds=0.0, clock=clock, max_retries=0, profile="azure",
                            server_api_key="azure-key", api_key="azure-key")
    assert str(client.base_url).endswith("/openai/v1/")
    tuned = train_toy_model(client).fine_tuned_model
    with pytest.raises(openai.NotFoundError, match="DeploymentNotFound|deployment"):
        _chat(client, tuned)
    deployments = AzureDeployments(ACCOUNT, "entra-token", backend.http(client), poll_seconds=0.0)
    name = deployment_name(tuned)
    outcome = deployments.ensure(name, tuned)
    assert (outcome.action, outcome.state) == ("created", "Succeeded")
    assert _chat(client, name).model == tuned
    assert deployments.ensure(name, tuned).action == "reused"
    # 15 days without a call: Azure deletes the deployment; the next run recreates it.
    clock.advance(16 * DAY)
    assert deployments.get(name) is None
    with pytest.raises(openai.NotFoundError):
        _chat(client, name)
    assert deployments.ensure(name, tuned, existed_before=True).action == "recreated"
    assert _chat(client, name).choices


def test_the_azure_profile_takes_the_api_key_header_and_refuses_other_keys(backend: Backend) -> None:
    client = backend.client(job_seconds=0.0, max_retries=0, profile="azure", server_api_key="azure-key",
                            api_key="wrong", default_headers={"api-key": "azure-key"})
    assert _chat(client, BASE_MODEL).choices  # the api-key header is what Azure reads
    wrong = backend.client(job_seconds=0.0, max_retries=0, profile="azure", server_api_key="azure-key", api_key="wrong")
    with pytest.raises(openai.AuthenticationError):
        _chat(wrong, BASE_MODEL)
    with pytest.raises(openai.NotFoundError):  # OpenAI's /v1 paths are not Azure's
        openai.OpenAI(api_key="azure-key", base_url=str(client.base_url).replace("/openai/v1", "/v1"),
                      http_client=client._client, max_retries=0).models.list()


def test_the_management_routes_refuse_without_a_token_or_api_version(backend: Backend) -> None:
    client = backend.client(job_seconds=0.0, max_retries=0, profile="azure")
    http = backend.http(client)
    path = ACCOUNT.deployment_path("x-1")
    assert http.get(path, params={"api-version": "2024-10-21"}).json()["error"]["code"] == "AuthenticationFailed"
    answer = http.get(path, headers={"authorization": "Bearer t"})
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "MissingApiVersionParameter")
    refused = http.put(path, params={"api-version": "2024-10-21"}, headers={"authorization": "Bearer t"},
                       json={"sku": {"name": "standard", "capacity": 1},
                             "properties": {"model": {"format": "OpenAI", "name": "ft:nope:x:y:z", "version": "1"}}})
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "DeploymentModelNotSupported")


def test_backend_options_refuse_unknown_profiles_and_bad_dates() -> None:
    with pytest.raises(ValueError, match="profile"):
        BackendOptions(profile="bedrock")
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        BackendOptions(model_shutdowns={"gpt-4o-mini": "14/01/2027"})


def test_deployment_names_are_stable_and_valid() -> None:
    assert deployment_name("ft:gpt-4o-mini-2024-07-18:local:goodreads:AbC123") == "goodreads-AbC123"
    assert deployment_name("gpt-4o-mini-2024-07-18.ft-b044a9d3") == "ft-b044a9d3"
    assert len(deployment_name(f"ft:x:y:{'s' * 64}:id")) <= 64


@pytest.mark.slow
def test_serve_takes_the_profile_shutdown_and_refusal_flags() -> None:
    from tests.support.local_openai import serve_subprocess

    with serve_subprocess("--profile", "azure", "--api-key", "k", "--model-shutdown", "gpt-4o-mini=2020-01-01",
                          "--model-shutdown", "gpt-4.1-mini=2999-12-31", "--refuse-fine-tuning") as served:
        client = openai.OpenAI(base_url=served.base_url.removesuffix("/v1") + "/openai/v1", api_key="x",
                               default_headers={"api-key": "k"}, max_retries=0)
        assert client.models.retrieve("gpt-4.1-mini-2025-04-14").shutdown_date == "2999-12-31"
        with pytest.raises(openai.NotFoundError, match="has been deprecated"):
            _chat(client, BASE_MODEL)
        file_id = upload(client, jsonl(toy_examples(20)))
        with pytest.raises(openai.PermissionDeniedError, match="does not have access"):
            client.fine_tuning.jobs.create(model="gpt-4.1-mini-2025-04-14", training_file=file_id)
    assert b"azure profile" in served.stderr and b"/openai/v1" in served.stderr
