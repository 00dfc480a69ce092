"""`upload_training_file`, `upload_validation_file`: content-addressed uploads through OpenAIResource.

A file whose sha256 was already uploaded (purpose fine-tune) is reused instead of uploaded
again, so an unchanged re-run uploads nothing.
(No `from __future__ import annotations`: Dagster inspects the real `context` annotation.)
"""

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
import openai as openai_sdk
from dagster_openai import OpenAIResource
from openai.types import FileObject

from fine_tuning.core.checksums import file_sha256
from fine_tuning.core.lifecycle import utc_today
from fine_tuning.lib.facts import latest_metadata
from fine_tuning.lib.failures import api_errors
from fine_tuning.lib.lifecycle import provider_name, require_runway
from fine_tuning.lib.run_settings import require_valid_run_settings
from fine_tuning.lib.task.tuning import TuningSettings

if TYPE_CHECKING:
    from fine_tuning.lib.task.component import FineTuningTask

FILE_PURPOSE = "fine-tune"


def upload_filename(sha256: str, kind: str) -> str:
    """The name a file is uploaded under: content-addressed, so reuse can be found by listing."""
    return f"{sha256[:16]}-{kind}.jsonl"


def _content_sha256(client: openai_sdk.OpenAI, file_id: str) -> str | None:
    """sha256 of an uploaded file's content, or None when the provider refuses to serve it.

    OpenAI does not let fine-tune files be downloaded; the local backend does. When refused,
    the match rests on the name (16 hex digits of the sha256) and the exact byte count.
    """
    try:
        content = client.files.content(file_id)
    except (openai_sdk.PermissionDeniedError, openai_sdk.BadRequestError, openai_sdk.NotFoundError):
        return None
    return hashlib.sha256(content.content).hexdigest()


def find_uploaded_file(
    client: openai_sdk.OpenAI, sha256: str, size: int, kind: str, log: Any | None = None
) -> FileObject | None:
    """An already uploaded fine-tune file with this content, if there is one."""
    wanted_name = upload_filename(sha256, kind)
    for uploaded in client.files.list(purpose=FILE_PURPOSE):  # auto-paginates
        if uploaded.filename != wanted_name or uploaded.bytes != size or uploaded.status == "error":
            continue
        content_sha = _content_sha256(client, uploaded.id)
        if content_sha is None:
            if log is not None:
                log.info(f"{uploaded.id}: provider does not serve fine-tune content; matched on name and size")
            return uploaded
        if content_sha == sha256:
            return uploaded
        if log is not None:
            log.warning(f"{uploaded.id} is named {wanted_name} but its content differs; not reusing it")
    return None


def _verified_upstream_file(upstream: Mapping[str, Any], source: str) -> tuple[Path, str]:
    """Path and sha256 of the upstream JSONL file, after checking the file still has that content."""
    missing = [key for key in ("path", "sha256") if not upstream.get(key)]
    if missing:
        raise dg.Failure(
            description=f"The latest materialization of {source} has no {', '.join(missing)} metadata."
        )
    path = Path(str(upstream["path"]))
    expected = str(upstream["sha256"])
    if not path.is_file():
        raise dg.Failure(description=f"{source} file {path} is missing; re-materialize {source}.")
    actual = file_sha256(path)
    if actual != expected:
        raise dg.Failure(
            description=(
                f"{source} file {path} changed since it was materialized and checked "
                f"(sha256 {actual[:12]}..., recorded {expected[:12]}...); re-materialize {source}."
            )
        )
    return path, expected


def upload_or_reuse(
    client: openai_sdk.OpenAI, path: Path, sha256: str, kind: str, log: Any | None = None
) -> tuple[FileObject, bool]:
    """The uploaded file for this content and whether it was reused rather than uploaded now."""
    size = path.stat().st_size
    with api_errors(f"listing uploaded files for {path.name}", client):
        existing = find_uploaded_file(client, sha256, size, kind, log)
    if existing is not None:
        return existing, True
    with api_errors(f"uploading {path}", client), path.open("rb") as handle:
        uploaded = client.files.create(
            file=(upload_filename(sha256, kind), handle, "application/jsonl"), purpose=FILE_PURPOSE
        )
    return uploaded, False


def build_upload_asset(task: "FineTuningTask", kind: str) -> dg.AssetsDefinition:
    """`upload_{kind}_file`: uploads the task's `{kind}_file` once per content (kind: training|validation)."""
    keys = task.keys
    source = keys.asset(f"{kind}_file")
    source_name = source.to_user_string()

    @dg.asset(
        key=keys.asset(f"upload_{kind}_file"),
        kinds={"openai"},
        required_resource_keys={"openai", keys.tuning_resource},
        group_name=task.model_group(),
        # Both files, not just `source`: a failed blocking check on either file must stop both
        # uploads, so a half-valid pair never reaches the provider.
        deps=[keys.training_file, keys.validation_file],
        description=(
            f"Upload {source_name} (purpose fine-tune) once the checks of both files pass, reusing an "
            "already uploaded file with the same sha256 instead of uploading it again."
        ),
    )
    def _upload(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        require_valid_run_settings(context)
        openai: OpenAIResource = context.resources.openai
        tuning: TuningSettings = getattr(context.resources, keys.tuning_resource)
        path, sha256 = _verified_upstream_file(latest_metadata(context, source), source_name)
        with openai.get_client(context) as client:
            # The base model must outlive min_runway_days, or nothing is uploaded (lib.lifecycle).
            require_runway(client, provider_name(openai), tuning.base_model, tuning.min_runway_days, utc_today())
            uploaded, reused = upload_or_reuse(client, path, sha256, kind, context.log)
        context.log.info(f"{'Reusing' if reused else 'Uploaded'} {uploaded.id} for {path} ({sha256[:12]}...)")
        return dg.MaterializeResult(
            metadata={
                "file_id": uploaded.id,
                "bytes": int(uploaded.bytes),
                "reused": reused,
                "sha256": sha256,
                "filename": uploaded.filename,
                "path": str(path),
            }
        )

    return _upload
