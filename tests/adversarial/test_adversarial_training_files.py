"""Adversarial training files: the validator, the CLI and the local backend agree, and none crashes.

Each malformed file is reported with its exact error kind at its exact line, the CLI exits 1
without a traceback, the local backend fails the job with OpenAI's error code naming that line
(an example over the token limit is, as on OpenAI, trained truncated with a warning: the
pipeline's token check blocks it before upload); each twin passes all three.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import openai
import pytest

from fine_tuning import validate
from fine_tuning.core.chat_files import find_overlap, validate_chat_file
from fine_tuning.core.graders import exact_match_grader
from local_openai.transport import local_client

from tests.adversarial.training_file_cases import (
    CASES,
    METHOD_CASES,
    METHOD_VALID,
    TOTAL,
    VALID_ODDITIES,
    WARNING_CASES,
    FileCase,
)
from tests.support.local_openai import upload, wait_for

pytestmark = pytest.mark.adversarial
ALL_CASES = CASES + METHOD_CASES
IDS = [case.name for case in ALL_CASES]
# The model each method trains in the backend, and the method object the job is created with.
JOB_MODELS = {"supervised": "gpt-4o-mini-2024-07-18", "dpo": "gpt-4o-mini-2024-07-18", "reinforcement": "o4-mini-2025-04-16"}
JOB_METHODS = {
    "supervised": {"type": "supervised"},
    "dpo": {"type": "dpo", "dpo": {}},
    "reinforcement": {"type": "reinforcement", "reinforcement": {"grader": exact_match_grader()}},
}


def validated(path: Path, case: FileCase) -> Any:
    return validate_chat_file(path, case.model, method=case.method)


def written(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / f"{name}.jsonl"
    path.write_bytes(data)
    return path


def test_there_are_at_least_forty_malformed_files_covering_every_rule() -> None:
    from fine_tuning.core.chat_files import FORMAT_ERROR_KINDS, TOKEN_ERROR_KINDS

    assert len(CASES) >= 40
    assert {case.kind for case in ALL_CASES} == set(FORMAT_ERROR_KINDS + TOKEN_ERROR_KINDS)
    assert {case.method for case in METHOD_CASES} == {"supervised", "dpo", "reinforcement"}


@pytest.mark.parametrize("case", ALL_CASES, ids=IDS)
def test_the_validator_names_the_kind_and_line_and_passes_the_twin(tmp_path: Path, case: FileCase) -> None:
    started = time.perf_counter()
    report = validated(written(tmp_path, "bad", case.bad()), case)
    assert time.perf_counter() - started < 10  # bounded, even for the 30 MB line
    assert not report.ok
    if case.line is None:
        assert report.error_counts[case.kind] == 1 and report.error_lines[case.kind] == []
    else:
        assert report.error_lines[case.kind] == [case.line], report.error_lines
        blamed = {line for lines in report.error_lines.values() for line in lines}
        assert blamed == {case.line}  # no good line is blamed
    assert report.text() and report.errors_markdown()  # rendering never fails either
    if case.line is not None:
        assert report.first_error()[1] == case.line and report.first_error()[2]  # the line and the rule
    twin = validated(written(tmp_path, "twin", case.twin()), case)
    assert twin.ok, twin.error_lines
    assert not twin.warning_counts


@pytest.mark.parametrize("case", ALL_CASES, ids=IDS)
def test_the_cli_exits_1_without_a_traceback_and_0_on_the_twin(
    tmp_path: Path, case: FileCase, capsys: pytest.CaptureFixture[str]
) -> None:
    options = ["--method", case.method, "--model", JOB_MODELS[case.method] if case.method != "supervised" else case.model]
    assert validate.main([str(written(tmp_path, "bad", case.bad())), *options]) == 1
    out = capsys.readouterr()
    assert f"{case.kind}:" in out.out and "Result: FAILED" in out.out
    assert "Traceback" not in out.out + out.err
    assert validate.main([str(written(tmp_path, "twin", case.twin())), *options]) == 0


@pytest.mark.parametrize("case", ALL_CASES, ids=IDS)
def test_the_overlap_check_never_crashes(tmp_path: Path, case: FileCase) -> None:
    bad = written(tmp_path, "bad", case.bad())
    assert find_overlap(bad, written(tmp_path, "twin", case.twin())) is not None


@pytest.mark.parametrize("case", WARNING_CASES, ids=[c.name for c in WARNING_CASES])
def test_accepted_oddities_are_warnings_not_errors(tmp_path: Path, case: FileCase) -> None:
    report = validate_chat_file(written(tmp_path, "odd", case.bad()))
    assert report.ok and report.warning_lines[case.kind] == [case.line]
    assert case.kind in report.text()
    twin = validate_chat_file(written(tmp_path, "twin", case.twin()))
    assert twin.ok and not twin.warning_counts


@pytest.mark.parametrize("name", sorted(VALID_ODDITIES))
def test_valid_oddities_pass(tmp_path: Path, name: str) -> None:
    report = validate_chat_file(written(tmp_path, name, VALID_ODDITIES[name]()))
    assert report.ok and report.examples == TOTAL, report.error_lines


@pytest.mark.parametrize("name", sorted(METHOD_VALID))
def test_valid_files_of_each_method_pass(tmp_path: Path, name: str) -> None:
    method, data = METHOD_VALID[name]
    report = validate_chat_file(written(tmp_path, name, data()), JOB_MODELS[method], method=method)
    assert report.ok and report.examples == TOTAL and not report.warning_counts, report.error_lines


def test_a_directory_is_reported_as_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert validate.main([str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> openai.OpenAI:
    """One in-process local backend for the module (jobs validate their files within 0.1 s)."""
    return local_client(tmp_path_factory.mktemp("backend"), job_seconds=0.1, max_retries=0)


def _job_outcome(client: openai.OpenAI, data: bytes, case: FileCase) -> tuple[str, str, str, list[str]]:
    """(status, error code, error message, warning events) of a job trained on `data` (a refused upload counts as failed)."""
    try:
        file_id = upload(client, data)
    except openai.BadRequestError as error:
        return "failed", str(error.code), str(error.message), []
    model = case.model if case.method == "supervised" else JOB_MODELS[case.method]
    created = client.fine_tuning.jobs.create(model=model, training_file=file_id, method=JOB_METHODS[case.method])
    job = wait_for(client, created.id)
    warnings = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100) if e.level == "warn"]
    return job.status, job.error.code if job.error else "", job.error.message if job.error else "", warnings


@pytest.mark.parametrize("case", ALL_CASES, ids=IDS)
def test_the_local_backend_refuses_what_the_validator_rejects(backend: openai.OpenAI, case: FileCase) -> None:
    status, code, message, warnings = _job_outcome(backend, case.bad(), case)
    if case.kind == "too_many_tokens":
        # As on OpenAI, an over-long example is trained truncated and announced; the pipeline's
        # blocking token check is what keeps such a file from being uploaded at all.
        assert status == "succeeded" and any("longer than the 65536-token limit" in w for w in warnings), warnings
    elif case.kind == "too_few_examples":
        assert status == "failed" and code in ("invalid_n_examples", "invalid_file_format"), (code, message)
    else:
        assert status == "failed"
        assert code == "invalid_training_file" and f"line {case.line}:" in message, (code, message)
    twin_status, twin_code, twin_message, _ = _job_outcome(backend, case.twin(), case)
    assert twin_status == "succeeded", (twin_code, twin_message)


def test_the_cli_refuses_a_method_the_model_lacks_before_reading(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "never-read.jsonl"
    assert validate.main([str(missing), "--model", "gpt-3.5-turbo-0125", "--method", "dpo"]) == 1
    assert "cannot be fine-tuned with method 'dpo'" in capsys.readouterr().err
