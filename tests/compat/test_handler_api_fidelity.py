"""The ``ts`` handler API under load, side by side: the same archives and requests to real TorchServe
0.12.0 and to our backend, answers compared. Request envelopes chosen with ``service_envelope``
(body, json, kserve, kservev2) and a handler built on ``MicroBatching`` serving concurrent batches."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ts_notebook.archive import build_archive

from .embedded import http, side_by_side

pytestmark = pytest.mark.compat

ENVELOPED = """
def _flat(value):
    return [x for item in value for x in _flat(item)] if isinstance(value, list) else [value]


def handle(data, context):
    if data is None:
        return None
    out = []
    for row in data:
        if isinstance(row, dict) and "datatype" in row:  # a KServe v2 input
            out.append([x * 2 for x in _flat(row["data"])] if row["datatype"] != "BYTES" else [row["data"]])
        elif isinstance(row, (bytes, bytearray)):
            out.append(row.decode())
        elif isinstance(row, list):
            out.append(sum(_flat(row)))
        else:
            out.append(row)
    return out
"""
MICRO = """
import threading

from ts.handler_utils.micro_batching import MicroBatching
from ts.torch_handler.base_handler import BaseHandler


class Piped(BaseHandler):
    def __init__(self):  # as TorchServe's example: the worker takes `handle` before initialize runs
        super().__init__()
        self.handle = MicroBatching(self)

    def initialize(self, context):
        self.initialized = True
        self.context = context
        self.handle.micro_batch_size = 2
        self.handle.parallelism = {"preprocess": 2, "inference": 1}

    def preprocess(self, data):
        return [(row.get("body") or row.get("data"))["x"] for row in data]

    def inference(self, data):
        return [x * 10 for x in data]

    def postprocess(self, data):
        in_pipeline = self.handle.get_micro_batch_idx() is not None
        return [{"y": y, "on_stage_thread": in_pipeline and threading.current_thread().name != "MainThread"}
                for y in data]
"""
REQUESTS: dict[str, list[tuple[bytes, dict[str, str]]]] = {
    "body": [(b"[1, 2, 3]", {}), (b'{"a": 1}', {})],
    "json": [(b'{"instances": [[1, 2], [3, 4]]}', {}), (b'{"instances": [{"b64": "YQ=="}]}', {})],
    "kserve": [(b'{"instances": [[1, 2], [3, 4], [5]]}', {}), (b'{"instances": [[1]]}', {"explain": "True"})],
    "kservev2": [
        (
            b'{"id": "r1", "inputs": [{"name": "in0", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]},'
            b' {"name": "in1", "shape": [3], "datatype": "INT64", "data": [1, 2, 3]}]}',
            {},
        ),
        (b'{"id": "r2", "inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": ["hello"]}]}', {}),
        (b'{"id": "r3", "inputs": [{"name": "f", "shape": [2], "datatype": "FP64", "data": [0.5, 1]}]}', {}),
    ],
}


REGISTRATIONS = (
    "url=enveloped.mar&initial_workers=1&synchronous=true",
    "url=piped.mar&initial_workers=1&synchronous=true&batch_size=4&max_batch_delay=300",
)


def _archives(folder: Path) -> list[Path]:
    (folder / "enveloped.py").write_text(ENVELOPED)
    (folder / "piped.py").write_text(MICRO)
    return [
        build_archive("enveloped", "1.0", str(folder / "enveloped.py"), export_path=folder).path,
        build_archive("piped", "1.0", str(folder / "piped.py"), export_path=folder).path,
    ]


def _servers(envelope: str | None, ts_ref_venv: Path, tmp: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """{server: inference URL}, both archives registered on both servers, under ``envelope``."""
    archives = _archives(tmp.mktemp("handler-api"))
    props = {"service_envelope": envelope} if envelope else {}
    with side_by_side(ts_ref_venv, tmp.mktemp("handler-api-ours"), archives, props, REGISTRATIONS) as (ts, ours):
        yield {"ts": ts.inference_url, "ours": ours.inference_url}


@pytest.fixture(scope="module", params=list(REQUESTS))
def enveloped(
    request: pytest.FixtureRequest, ts_ref_venv: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str]]]:
    """(envelope, {server: inference URL}) for each service_envelope."""
    for urls in _servers(request.param, ts_ref_venv, tmp_path_factory):
        yield request.param, urls


@pytest.fixture(scope="module")
def plain(ts_ref_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """{server: inference URL} without an envelope."""
    yield from _servers(None, ts_ref_venv, tmp_path_factory)


def test_envelopes_answer_as_in_torchserve(enveloped: tuple[str, dict[str, str]]) -> None:
    envelope, urls = enveloped
    answers = {}
    for server, base in urls.items():
        answers[server] = [
            http("POST", f"{base}/predictions/enveloped", body, {"Content-Type": "application/json", **headers})[:2]
            for body, headers in REQUESTS[envelope]
        ]
    assert answers["ours"] == answers["ts"], json.dumps({k: repr(v) for k, v in answers.items()})
    assert all(status == 200 for status, _ in answers["ts"]), answers["ts"]


def test_micro_batching_handler_answers_each_request_in_a_batch(plain: dict[str, str]) -> None:
    answers = {}
    for server, base in plain.items():

        def one(x: int, base: str = base) -> tuple[int, bytes]:
            body = json.dumps({"x": x}).encode()
            return http("POST", f"{base}/predictions/piped", body, {"Content-Type": "application/json"})[:2]

        with ThreadPoolExecutor(4) as pool:
            answers[server] = list(pool.map(one, range(8)))
    assert answers["ours"] == answers["ts"]
    assert [json.loads(body) for _, body in answers["ts"]] == [{"y": x * 10, "on_stage_thread": True} for x in range(8)]
