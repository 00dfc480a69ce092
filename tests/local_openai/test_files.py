"""Files API of the local backend, through the official client, in-process and over HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx2
import openai
import pytest
from openai.types import FileDeleted, FileObject

from tests.support.local_openai import Backend, jsonl, validated
from tests.support.toy_books import toy_examples


def test_upload_retrieve_content_and_delete(client: openai.OpenAI) -> None:
    data = jsonl(toy_examples(12))
    raw = client.files.with_raw_response.create(file=("train.jsonl", data), purpose="fine-tune")
    created = validated(FileObject, raw.http_response)
    assert (created.bytes, created.filename, created.purpose, created.status) == (
        len(data), "train.jsonl", "fine-tune", "processed"
    )
    assert created.id.startswith("file-")
    assert validated(FileObject, client.files.with_raw_response.retrieve(created.id).http_response) == created
    assert client.files.content(created.id).read() == data
    deleted = validated(FileDeleted, client.files.with_raw_response.delete(created.id).http_response)
    assert deleted.deleted and deleted.id == created.id
    with pytest.raises(openai.NotFoundError) as error:
        client.files.retrieve(created.id)
    assert error.value.body["message"] == f"No such File object: {created.id}"
    with pytest.raises(openai.NotFoundError):
        client.files.content(created.id)
    with pytest.raises(openai.NotFoundError):
        client.files.delete(created.id)


def test_list_is_newest_first_with_purpose_filter_and_pagination(client: openai.OpenAI) -> None:
    ids = [client.files.create(file=(f"f{i}.jsonl", b"{}\n"), purpose="fine-tune").id for i in range(5)]
    other = client.files.create(file=("notes.txt", b"hello"), purpose="user_data").id
    everything = [f.id for f in client.files.list()]
    assert everything == [other, *reversed(ids)]
    assert [f.id for f in client.files.list(purpose="fine-tune")] == list(reversed(ids))
    assert [f.id for f in client.files.list(purpose="fine-tune", order="asc")] == ids
    first = client.files.list(purpose="fine-tune", limit=2)
    assert [f.id for f in first.data] == [ids[4], ids[3]] and first.has_more
    # Auto-pagination walks every page through the `after` cursor.
    assert [f.id for f in client.files.list(purpose="fine-tune", limit=2)] == list(reversed(ids))
    raw = client.files.with_raw_response.list(limit=2).http_response.json()
    assert raw["object"] == "list" and raw["has_more"] is True
    for item in raw["data"]:
        FileObject.model_validate(item)


def test_file_names_are_data_never_paths(client: openai.OpenAI, store: Path, tmp_path: Path) -> None:
    created = client.files.create(file=("../../../escape.jsonl", b"{}\n"), purpose="fine-tune")
    assert created.filename == "escape.jsonl"
    assert not (tmp_path / "escape.jsonl").exists()
    assert not any(p.name == "escape.jsonl" for p in tmp_path.rglob("*"))
    # Ids that are not ids never reach the filesystem either (the client itself refuses
    # dot-segments, so these go through its raw HTTP client).
    for bad in ("file-..", "%2E%2E", "..%2F..%2Fetc%2Fpasswd", "file-abc.json", "file-abc%00"):
        for suffix in ("", "/content"):
            response = client._client.get(f"/files/{bad}{suffix}")
            assert response.status_code == 404, (bad, response.text)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("file-doesnotexist")


def test_upload_errors_are_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as wrong_type:
        client.files.create(file=("train.csv", b"a,b\n"), purpose="fine-tune")
    assert wrong_type.value.body["param"] == "file" and wrong_type.value.code == "invalid_file_format"
    with pytest.raises(openai.BadRequestError) as purpose:
        client.files.create(file=("train.jsonl", b"{}\n"), purpose="nonsense")  # type: ignore[arg-type]
    assert purpose.value.body["param"] == "purpose"


def test_malformed_and_oversized_uploads(backend: Backend) -> None:
    small = backend.client(max_body_bytes=1000, max_retries=0)
    with pytest.raises(openai.APIStatusError) as too_big:
        small.files.create(file=("big.jsonl", b"x" * 5000), purpose="fine-tune")
    assert too_big.value.status_code == 413 and too_big.value.code == "request_too_large"
    raw_http = small._client  # the client's own httpx2 client: the in-process transport, or a socket
    for body, content_type in [
        (b"not multipart at all", "multipart/form-data; boundary=xyz"),
        (b"--xyz\r\nno-headers-end", "multipart/form-data; boundary=xyz"),
        (b"", "multipart/form-data"),
        (b'{"purpose": "fine-tune"}', "application/json"),
    ]:
        response = raw_http.post(
            "/files", content=body, headers={"content-type": content_type, "authorization": "Bearer x"}
        )
        assert response.status_code == 400, body
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    missing_file = raw_http.post(
        "/files",
        content=b'--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n--b--\r\n',
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert missing_file.status_code == 400 and missing_file.json()["error"]["param"] == "file"
    assert isinstance(raw_http, httpx2.Client)


def test_multipart_parser_handles_quoted_and_rfc5987_names(backend: Backend) -> None:
    client = backend.client()
    body = (
        b'--B\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
        b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\\\"b.jsonl\"; "
        b"filename*=UTF-8''%C3%A9t%C3%A9.jsonl\r\nContent-Type: application/octet-stream\r\n\r\n"
        b"line1\r\n--B-not-a-boundary\r\nline2\r\n--B--\r\n"
    )
    response = client._client.post("/files", content=body, headers={"content-type": "multipart/form-data; boundary=B"})
    assert response.status_code == 200, response.text
    created = FileObject.model_validate(response.json())
    assert created.filename == "été.jsonl"
    assert client.files.content(created.id).read() == b"line1\r\n--B-not-a-boundary\r\nline2"


def test_deleting_while_listing_walks_every_page(client: openai.OpenAI) -> None:
    uploaded = {client.files.create(file=(f"f{i}.jsonl", b"{}\n"), purpose="fine-tune").id for i in range(7)}
    deleted = set()
    for file in client.files.list(limit=2):  # auto-paginates with `after` = the last id seen
        client.files.delete(file.id)
        deleted.add(file.id)
    assert deleted == uploaded
    assert list(client.files.list()) == []
