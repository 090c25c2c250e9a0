"""What the client gets for each kind of handler output (REPORT §5.1) and each handler failure
(§5.2), on a model registered once for the module."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import torch

from tests.backend.conftest import MAX_REQUEST_SIZE, Models
from tests.backend.helpers import Backend, call, error_body
from ts_notebook.records import LogLine


@pytest.fixture(scope="module")
def out(backend: Backend) -> Iterator[str]:
    """The probe as "out" (1 worker) and "other" (1 worker), for the whole module."""
    m = Models(backend)
    try:
        m.register("probe.mar", "out", initial_workers=1)
        m.register("probe.mar", "other", initial_workers=1)
        yield "out"
    finally:
        m.cleanup()


@pytest.mark.parametrize(
    ("mode", "body"),
    [
        ("dict", b'{\n  "idx": 0,\n  "label": "cat",\n  "score": 0.5\n}'),
        ("nested", b'[\n  1,\n  2,\n  {\n    "a": [\n      3.5,\n      null,\n      true\n    ]\n  }\n]'),
        ("str", b"hello 0"),
        ("bytes", b"\x00\x01\xffBIN"),
        ("number", b"42"),
        ("none", b"null"),
    ],
)
def test_output_encoding(backend: Backend, out: str, mode: str, body: bytes) -> None:
    reply = backend.predict(out, mode=mode)
    assert reply.status == 200
    assert reply.body == body
    assert reply.headers["cache-control"] == "no-cache; no-store, must-revalidate, private"
    assert reply.headers["x-request-id"]


def test_tensor_output_is_torch_save_bytes(backend: Backend, out: str) -> None:
    reply = backend.predict(out, mode="tensor")
    assert reply.status == 200
    assert reply.body.startswith(b"PK\x03\x04")
    value = torch.load(io.BytesIO(reply.body), weights_only=True)
    assert torch.equal(value, torch.tensor([1.0, 2.0]))


def test_handler_sets_status_reason_and_header(backend: Backend, out: str) -> None:
    reply = backend.predict(out, mode="status")
    assert (reply.status, reply.reason) == (201, "CreatedByHandler")
    assert reply.body == b'{\n  "idx": 0\n}'
    assert reply.headers["x-handler-header"] == "yes"


def test_handler_sets_content_type(backend: Backend, out: str) -> None:
    reply = backend.predict(out, mode="csv")
    assert reply.status == 200
    assert reply.body == b"a,b\n1,2\n"
    assert reply.headers["content-type"] == "text/csv"
    assert [k for k, _ in reply.header_list if k.lower() == "content-type"] == ["Content-Type"]


def test_handler_content_type_header_in_any_case_wins(backend: Backend, out: str) -> None:
    reply = backend.predict(out, mode="ctype-header")
    assert reply.status == 200
    assert [v for k, v in reply.header_list if k.lower() == "content-type"] == ["application/x-probe"]


@pytest.mark.parametrize(
    ("mode", "code", "message"),
    [
        ("raise", 503, "Prediction failed"),
        ("predexc", 418, "custom prediction failure"),
        ("wronglen", 503, "number of batch response mismatched"),
        ("dict-not-list", 503, "Invalid model predict output"),
        ("object", 503, "Unsupported model output data type."),
    ],
)
def test_handler_failures(backend: Backend, out: str, mode: str, code: int, message: str) -> None:
    pids = backend.ready_pids(out)
    reply = backend.predict(out, mode=mode)
    assert reply.status == code
    assert reply.body == error_body(code, "InternalServerException", message)
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.headers["connection"].lower() == "close"
    assert b"Traceback" not in reply.body
    # the worker survives a handler error, and the server and other models are untouched
    assert backend.ready_pids(out) == pids
    assert backend.predict(out).body == b"ok"
    assert backend.predict("other").body == b"ok"
    assert call("GET", backend.inference + "/ping").body == b'{\n  "status": "Healthy"\n}\n'


def test_handler_exception_traceback_goes_to_the_event_log(backend: Backend, out: str) -> None:
    since = backend.events().latest
    reply = backend.predict(out, mode="raise")
    rid = reply.headers["x-request-id"]
    assert reply.status == 503
    logs = backend.events(since=since, kind="log", model=out).of(LogLine)
    text = "\n".join(e.message for e in logs if e.request_id == rid)
    assert "ValueError: boom from handle()" in text
    assert "probe_handler.py" in text


def test_model_with_no_worker_is_503(backend: Backend, models: Models) -> None:
    models.register("probe.mar", "zero", initial_workers=0)
    reply = backend.predict("zero")
    assert reply.status == 503
    assert reply.body == error_body(
        503,
        "ServiceUnavailableException",
        'Model "zero" has no worker to serve inference request. Please use scale workers API to add workers. '
        "If this is a sequence inference, please check if it is closed, or expired; or exceeds maxSequenceJobQueueSize",
    )


def test_request_over_max_request_size_is_413(backend: Backend, out: str) -> None:
    body = json.dumps({"x": "a" * (MAX_REQUEST_SIZE + 10)}).encode()
    reply = backend.predict(out, body, mode="echo")
    assert (reply.status, reply.body) == (413, b"")
    # just under the limit still reaches the handler
    body = json.dumps({"x": "a" * (MAX_REQUEST_SIZE - 100)}).encode()
    assert backend.predict(out, body).status == 200


def test_intermediate_responses_stream_before_the_answer(backend: Backend) -> None:
    """send_intermediate_predict_response chunks reach the client at once (chunked), then the answer."""
    import http.client
    import time
    import urllib.parse

    parts = urllib.parse.urlsplit(backend.inference)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        began = time.monotonic()
        conn.request(
            "POST", "/predictions/startup", body=b"{}", headers={"Content-Type": "application/json", "X-Mode": "stream"}
        )
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("Transfer-Encoding") == "chunked"
        first = resp.read(5)
        first_at = time.monotonic() - began
        rest = resp.read()
        total = time.monotonic() - began
    finally:
        conn.close()
    assert first + rest == b"tok1 final"
    assert first_at < 0.8 <= total  # the first chunk did not wait for the handler's last second
