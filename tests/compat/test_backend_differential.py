"""The same archives and requests against real TorchServe 0.12.0 and our backend: status codes
and bodies must agree (volatile fields such as pids, times and memory aside)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ts_notebook.archive import build_archive
from ts_notebook.deploy.torchserve import TorchServe

from .embedded import EmbeddedBackend, http

pytestmark = pytest.mark.compat

PROBE = """\
import json
import logging

from ts.torch_handler.base_handler import BaseHandler
from ts.handler_utils.utils import send_intermediate_predict_response
from ts.utils.util import PredictionException


def _plain(value):
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": list(value)}
    return value


class Probe(BaseHandler):
    def initialize(self, context):
        self.initialized = True

    def handle(self, data, context):
        mode = context.get_request_header(0, "x-mode") or "echo"
        logging.info("probe mode=%s batch=%d", mode, len(data))
        if mode == "raise":
            raise ValueError("boom from handle()")
        if mode == "predexc":
            raise PredictionException("custom prediction failure", 418)
        if mode == "short":
            return data + [None]
        if mode == "dict":
            return {"not": "a list"}
        if mode == "object":
            return [object() for _ in data]
        if mode == "str":
            return ["hello 0" for _ in data]
        if mode == "bytes":
            return [b"\\x00\\x01\\xffBIN" for _ in data]
        if mode == "none":
            return [None for _ in data]
        if mode == "number":
            return [42 for _ in data]
        if mode == "csv":
            context.set_response_content_type(0, "text/csv")
            return ["a,b\\n1,2\\n"]
        if mode == "stream":
            for token in ("tok1 ", "tok2 "):
                send_intermediate_predict_response([token for _ in data], context.request_ids, "Intermediate", 200,
                                                   context)
            return ["final" for _ in data]
        if mode == "status":
            context.set_response_status(201, "CreatedByHandler", 0)
            context.set_response_header(0, "x-handler-header", "yes")
            return [{"idx": 0}]
        headers = context.get_all_request_header(0)
        picked = {k: headers.get(k) for k in ("X-Custom", "x-custom", "x-lower", "explain", "url_path", "body",
                                               "field1", "file2", "foo", "n", "model_name")}
        return [{"row": {k: _plain(v) for k, v in row.items()}, "headers": picked} for row in data]
"""

BOUNDARY = "XyZ"
MULTIPART = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="field1"\r\n\r\nvalue1\r\n'
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file2"; filename="x.bin"\r\n'
    f"Content-Type: application/octet-stream\r\n\r\n\x00\x01file-bytes\r\n--{BOUNDARY}--\r\n"
).encode("latin-1")

INFERENCE_CASES: list[tuple[str, str, str, bytes, dict[str, str]]] = (
    [
        # (case, method, path, body, headers)
        (
            "json",
            "POST",
            "/predictions/probe",
            b'{"a": 1, "b": [1, 2], "s": "x"}',
            {"Content-Type": "application/json"},
        ),
        ("json_list", "POST", "/predictions/probe", b"[1.0, 2.0, 3.0, 4.0]", {"Content-Type": "application/json"}),
        ("bad_json", "POST", "/predictions/probe", b"{not json", {"Content-Type": "application/json"}),
        ("text", "POST", "/predictions/probe", "héllo".encode(), {"Content-Type": "text/plain; charset=utf-8"}),
        ("csv_in", "POST", "/predictions/probe", b"a,b\n1,2", {"Content-Type": "text/csv"}),
        (
            "octet",
            "POST",
            "/predictions/probe",
            b"\x00\x01\x02binary\xff",
            {"Content-Type": "application/octet-stream"},
        ),
        (
            "headers",
            "POST",
            "/predictions/probe",
            b'{"q": true}',
            {"Content-Type": "application/json", "X-Custom": "abc", "x-lower": "def"},
        ),
        ("url_path", "POST", "/predictions/probe/1.0/extra/seg", b"{}", {"Content-Type": "application/json"}),
        ("query_dropped", "POST", "/predictions/probe?foo=bar&n=1", b'{"q": 1}', {"Content-Type": "application/json"}),
        ("put", "PUT", "/predictions/probe", b'{"p": 1}', {"Content-Type": "application/json"}),
        ("delete", "DELETE", "/predictions/probe", b'{"d": 1}', {"Content-Type": "application/json"}),
        ("legacy_predict", "POST", "/probe/predict?foo=bar&n=1", b'{"a": 1}', {"Content-Type": "application/json"}),
        (
            "invocations",
            "POST",
            "/invocations?model_name=probe&foo=bar",
            b'{"a": 1}',
            {"Content-Type": "application/json"},
        ),
        ("invocations_get", "GET", "/invocations?model_name=probe&foo=bar", b"", {}),
        (
            "multipart",
            "POST",
            "/predictions/probe",
            MULTIPART,
            {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        ),
        (
            "urlencoded",
            "POST",
            "/predictions/probe",
            b"a=1&b=two",
            {"Content-Type": "application/x-www-form-urlencoded"},
        ),
        ("explain", "POST", "/explanations/probe", b'{"e": 1}', {"Content-Type": "application/json"}),
        (
            "v1_predict",
            "POST",
            "/v1/models/probe:predict",
            b'{"instances": [[1, 2]]}',
            {"Content-Type": "application/json"},
        ),
        ("v2_infer", "POST", "/v2/models/probe/infer", b'{"inputs": []}', {"Content-Type": "application/json"}),
    ]
    + [
        (f"mode_{m}", "POST", "/predictions/probe", b"{}", {"Content-Type": "application/json", "x-mode": m})
        for m in (
            "raise",
            "predexc",
            "short",
            "dict",
            "object",
            "str",
            "bytes",
            "none",
            "number",
            "csv",
            "status",
            "stream",
        )
    ]
    + [
        ("unknown_model", "POST", "/predictions/nope", b"{}", {}),
        ("unknown_version", "POST", "/predictions/probe/9.9", b"{}", {}),
        ("unknown_path", "POST", "/nothing/here", b"{}", {}),
        ("root_get", "GET", "/", b"", {}),
        ("zero_workers", "POST", "/predictions/zero", b"{}", {"Content-Type": "application/json"}),
    ]
)


@pytest.fixture(scope="module")
def probe_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("probe")
    (folder / "probe_handler.py").write_text(PROBE)
    build_archive("probe", "1.0", str(folder / "probe_handler.py"), export_path=folder)
    return folder / "probe.mar"


@pytest.fixture(scope="module")
def servers(
    torchserve: TorchServe, probe_archive: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, tuple[str, str]]]:
    ours = EmbeddedBackend(tmp_path_factory.mktemp("ours"), "--disable-token-auth", "--enable-model-api")
    try:
        shutil.copy(probe_archive, ours.store / "probe.mar")
        shutil.copy(probe_archive, torchserve.store / "probe.mar")
        urls = {
            "ts": (torchserve.inference_url, torchserve.management_url),
            "ours": (ours.inference_url, ours.management_url),
        }
        for _, mgmt in urls.values():
            assert http("POST", f"{mgmt}/models?url=probe.mar&initial_workers=1&synchronous=true")[0] == 200
            assert http("POST", f"{mgmt}/models?url=probe.mar&model_name=zero&initial_workers=0")[0] == 200
        yield urls
        for _, mgmt in urls.values():
            http("DELETE", f"{mgmt}/models/probe")
            http("DELETE", f"{mgmt}/models/zero")
    finally:
        ours.stop()


def _normalize(body: bytes) -> Any:
    """Parse JSON bodies; blank out what differs between any two runs (ids, times, pids, memory, urls)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ("*" if k in ("startTime", "pid", "memoryUsage", "id") else walk(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(data)


@pytest.mark.parametrize(
    ("case", "method", "path", "body", "headers"), INFERENCE_CASES, ids=[c[0] for c in INFERENCE_CASES]
)
def test_inference_answers_agree(
    servers: dict[str, tuple[str, str]], case: str, method: str, path: str, body: bytes, headers: dict[str, str]
) -> None:
    answers = {name: http(method, f"{inf}{path}", body or None, headers) for name, (inf, _) in servers.items()}
    (ts_status, ts_body, ts_headers), (status, got, our_headers) = answers["ts"], answers["ours"]
    assert status == ts_status, (got, ts_body)
    assert got == ts_body
    if "x-handler-header" in ts_headers:
        assert our_headers.get("x-handler-header") == ts_headers["x-handler-header"]
    # The same Content-Type, or none on both (TorchServe sends one only when the handler set it).
    assert our_headers.get("content-type") == ts_headers.get("content-type"), (our_headers, ts_headers)
    if case == "mode_csv":
        assert ts_headers.get("content-type") == "text/csv", ts_headers


def _mgmt(servers: dict[str, tuple[str, str]], method: str, path: str) -> dict[str, tuple[int, Any]]:
    out = {}
    for name, (_, mgmt) in servers.items():
        status, body, _ = http(method, f"{mgmt}{path}")
        out[name] = (status, _normalize(body))
    return out


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/models"),
        ("GET", "/models?limit=1"),
        ("GET", "/models?limit=1&next_page_token=1"),
        ("GET", "/models/probe"),
        ("GET", "/models/probe/all"),
        ("GET", "/models/probe/1.0"),
        ("GET", "/models/nope"),
        ("GET", "/models/probe/7.7"),
        ("POST", "/models"),
        ("POST", "/models?url=nonexistent.mar"),
        ("POST", "/models?url=probe.mar&initial_workers=1&synchronous=true"),
        ("PUT", "/models/nope?min_worker=1"),
        ("PUT", "/models/probe/9.9/set-default"),
        ("PUT", "/models/probe/1.0/set-default"),
        ("DELETE", "/models/nope"),
        ("DELETE", "/models/probe/5.5"),
    ],
)
def test_management_answers_agree(servers: dict[str, tuple[str, str]], method: str, path: str) -> None:
    answers = _mgmt(servers, method, path)
    assert answers["ours"] == answers["ts"]


def test_scale_register_and_unregister_texts_agree(servers: dict[str, tuple[str, str]]) -> None:
    steps = [
        ("POST", "/models?url=probe.mar&model_name=scaled&initial_workers=1&synchronous=true"),
        ("PUT", "/models/scaled?min_worker=2&max_worker=2&synchronous=true"),
        ("GET", "/models/scaled"),
        ("PUT", "/models/scaled?min_worker=1&max_worker=1&synchronous=true"),
        ("DELETE", "/models/scaled"),
        ("GET", "/models/scaled"),
    ]
    for method, path in steps:
        answers = _mgmt(servers, method, path)
        assert answers["ours"] == answers["ts"], (method, path)


def test_failed_initialize_is_reported_like_torchserve_but_with_the_cause(
    servers: dict[str, tuple[str, str]], torchserve: TorchServe, tmp_path: Path
) -> None:
    (tmp_path / "badinit.py").write_text(
        "class Bad:\n    def initialize(self, context):\n        raise RuntimeError('boom from initialize()')\n\n"
        "    def handle(self, data, context):\n        return data\n"
    )
    info = build_archive("badinit", "1.0", str(tmp_path / "badinit.py"), export_path=tmp_path)
    shutil.copy(info.path, torchserve.store / "badinit.mar")
    answers = {}
    for name, (_, mgmt) in servers.items():
        url = "badinit.mar" if name == "ts" else str(info.path)
        status, body, _ = http("POST", f"{mgmt}/models?url={url}&initial_workers=1&synchronous=true")
        answers[name] = (status, json.loads(body))
        http("DELETE", f"{mgmt}/models/badinit")
    ts_status, ts_body = answers["ts"]
    status, body = answers["ours"]
    assert (status, body["type"]) == (ts_status, ts_body["type"]) == (500, "InternalServerException")
    assert body["message"].startswith(ts_body["message"])  # TorchServe's words first ...
    assert "RuntimeError: boom from initialize() at badinit.py, line 3" in body["message"]  # ... then the real cause
    assert re.search(r"Failed to start workers for model badinit version: 1.0", ts_body["message"])
