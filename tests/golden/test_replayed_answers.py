"""What a golden test runs, in this process: the dry run's answer as the worker would send it (errors,
statuses, streamed chunks), the HTTP body rebuilt from a row, and the payload files read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ts_notebook.archive.build import build_archive
from ts_notebook.compare import Answer
from ts_notebook.golden import GoldenError, RecordedRequest, dry_run_answer, load_request
from ts_notebook.golden.run import http_body
from ts_notebook.golden.write import GoldenTests
from ts_notebook.handler.payload import make_request

HANDLER = """
from ts.utils.util import PredictionException, send_intermediate_predict_response


def handle(data, context):
    if data is None:
        return None
    body = data[0]["body"]
    if body == "refuse":
        raise PredictionException("not today", 418)
    if body == "broken":
        return "not a list"
    if body == "status":
        context.set_response_status(201, "Made", 0)
        context.set_response_content_type(0, "text/csv")
        return ["a,b"]
    if body == "stream":
        for token in ("one", "two"):
            send_intermediate_predict_response([{"token": token}], context.request_ids, "partial", 200, context)
        return [{"done": True}]
    return [{"echo": body}]
"""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("replayed")
    (folder / "kinds.py").write_text(HANDLER)
    info = build_archive("kinds", "1.0", str(folder / "kinds.py"), export_path=folder, archive_format="no-archive")
    return info.path


def _recorded(body: str) -> RecordedRequest:
    request = make_request(body, "text/plain")
    return RecordedRequest(
        "r1", "kinds", "1.0", "POST", "/predictions/kinds", request.row, request.headers, {}, Answer(200)
    )


def test_answers_are_made_as_the_worker_makes_them(model_dir: Path) -> None:
    ok = dry_run_answer(_recorded("hi"), model_dir)
    assert (ok.status, json.loads(ok.body), ok.content_type, ok.failure) == (
        200,
        {"echo": "hi"},
        "application/json",
        "",
    )
    refused = dry_run_answer(_recorded("refuse"), model_dir)
    assert (refused.status, refused.body) == (418, b"not today")
    assert refused.failure.startswith("handle failed at kinds.py, line 10, in handle: raise PredictionException(")
    broken = dry_run_answer(_recorded("broken"), model_dir)
    assert (broken.status, broken.body) == (503, b"Invalid model predict output")
    assert broken.failure.splitlines()[1].startswith("BatchContractError: handle returned a str, not a list")
    status = dry_run_answer(_recorded("status"), model_dir)
    assert (status.status, status.body, status.content_type) == (201, b"a,b", "text/csv")


def test_a_streamed_answer_keeps_its_chunks(model_dir: Path) -> None:
    streamed = dry_run_answer(_recorded("stream"), model_dir)
    assert streamed.chunks is not None
    assert [json.loads(c) for c in streamed.chunks] == [{"token": "one"}, {"token": "two"}]
    assert json.loads(streamed.body) == {"done": True}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"input": [1, 2.5]}', "application/json"),
        ("grüße".encode(), "text/plain; charset=utf-8"),
        (b"\x00\xff", "application/octet-stream"),
        (b"a=1&b=two", "application/x-www-form-urlencoded"),
        (
            b'--b0\r\nContent-Disposition: form-data; name="field"\r\n\r\nvalue\r\n'
            b'--b0\r\nContent-Disposition: form-data; name="file"; filename="x.bin"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n\x00\x01\xff\r\n--b0--\r\n",
            "multipart/form-data; boundary=b0",
        ),
    ],
)
def test_the_http_body_rebuilt_from_a_row_gives_the_same_row(body: bytes, content_type: str) -> None:
    served = make_request(body, content_type)
    raw, sent_type = http_body(served.row, served.headers)
    assert make_request(raw, sent_type).row == served.row


def test_a_damaged_payload_folder_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(GoldenError) as err:
        load_request(tmp_path / "gone")
    assert str(err.value).startswith(f"{tmp_path / 'gone'}: cannot read this recorded request (FileNotFoundError")
    assert str(err.value).endswith("Write the tests again with %ts_serve requests NAME --to-pytest FILE.")


def test_the_result_says_how_to_run_the_tests(tmp_path: Path) -> None:
    result = GoldenTests(
        "m", tmp_path / "test_m.py", tmp_path / "test_m_requests", ("a", "b"), "/x/m.mar", notes=("n",)
    )
    assert result.to_text().splitlines() == [
        f'wrote 2 test(s) of model "m" to {tmp_path}/test_m.py (requests and answers in test_m_requests/; '
        "replayed through /x/m.mar)",
        f"run them: pytest {tmp_path}/test_m.py",
        "note: n",
    ]
