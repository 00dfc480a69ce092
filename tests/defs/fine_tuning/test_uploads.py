"""upload_training_file / upload_validation_file: content-addressed uploads to the real local backend.

Real Dagster execution (`dg.materialize`), the real `openai` client, the local backend
in-process; the files are reported on the instance as the files step would report them.
"""

import dagster as dg
import pytest

from fine_tuning.core.checksums import file_sha256
from fine_tuning.lib.task.uploads import upload_filename, upload_or_reuse
from local_openai.transport import local_client

from tests.support.chain import Chain
from tests.support.dagster_runs import failure_text, latest_metadata_of
from tests.support.goodreads_task import upload_training_file, upload_validation_file


def test_second_upload_reuses_the_file_instead_of_uploading_again(chain: Chain) -> None:
    uploads = [upload_training_file, upload_validation_file]
    chain.materialize(uploads)
    first = latest_metadata_of(chain.instance, "upload_training_file")
    assert first["reused"] is False
    assert first["sha256"] == file_sha256(chain.files_dir / "training.jsonl")
    assert first["bytes"] == (chain.files_dir / "training.jsonl").stat().st_size
    files = chain.uploaded_files()
    assert len(files) == 2
    assert {f.filename for f in files} == {
        upload_filename(file_sha256(chain.files_dir / f"{kind}.jsonl"), kind) for kind in ("training", "validation")
    }

    chain.materialize(uploads)
    second = latest_metadata_of(chain.instance, "upload_training_file")
    assert second["reused"] is True
    assert second["file_id"] == first["file_id"]
    assert latest_metadata_of(chain.instance, "upload_validation_file")["reused"] is True
    assert len(chain.uploaded_files()) == 2


def test_upload_refuses_a_file_changed_after_it_was_checked(chain: Chain) -> None:
    training = chain.files_dir / "training.jsonl"
    training.write_text(training.read_text() + training.read_text().splitlines()[0] + "\n")
    result = chain.materialize([upload_training_file], raise_on_error=False)
    assert not result.success
    text = failure_text(result)
    assert "changed since it was materialized" in text and str(training.resolve()) in text
    assert chain.uploaded_files() == []


def test_a_same_named_file_with_other_content_is_not_reused(chain: Chain) -> None:
    """Reuse is confirmed on content, not trusted on the name alone."""
    training = chain.files_dir / "training.jsonl"
    sha = file_sha256(training)
    impostor = training.read_bytes().replace(b"Book 1", b"Book X")  # same size, other content
    chain.client().files.create(file=(upload_filename(sha, "training"), impostor), purpose="fine-tune")
    chain.materialize([upload_training_file])
    metadata = latest_metadata_of(chain.instance, "upload_training_file")
    assert metadata["reused"] is False
    assert len(chain.uploaded_files()) == 2


def test_api_errors_fail_clearly_without_the_key(chain: Chain) -> None:
    wrong_key = "sk-test-wrong-key-0123456789"
    client = local_client(str(chain.backend_dir), server_api_key="the-right-key", api_key=wrong_key, max_retries=0)
    training = chain.files_dir / "training.jsonl"
    with pytest.raises(dg.Failure) as failure:
        upload_or_reuse(client, training, file_sha256(training), "training")
    description = failure.value.description or ""
    assert "HTTP 401" in description and training.name in description
    assert wrong_key not in description and wrong_key not in str(failure.value)
