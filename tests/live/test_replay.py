"""Replay and debug served requests in the kernel, and per-stage timings of served requests."""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from tests.backend.helpers import call
from tests.shells import notebook_shell
from ts_notebook.replay import Replay

# Echoes what it got and fails on request: {"fail": true} raises in inference.
SPY = """
from ts.torch_handler.base_handler import BaseHandler


class Spy(BaseHandler):
    def initialize(self, context):
        self.initialized = True

    def preprocess(self, data):
        return data

    def inference(self, rows):
        for row in rows:
            body = row.get("body")
            if isinstance(body, dict) and body.get("fail"):
                raise KeyError("asked to fail")
        return rows

    def postprocess(self, rows):
        return [repr(row) for row in rows]
"""
MULTIPART = (
    b'--b0\r\nContent-Disposition: form-data; name="field"\r\n\r\nvalue\r\n'
    b'--b0\r\nContent-Disposition: form-data; name="file"; filename="x.bin"\r\n'
    b"Content-Type: application/octet-stream\r\n\r\n\x00\x01\xff\r\n--b0--\r\n"
)


@pytest.fixture
def ip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    with notebook_shell(tmp_path, monkeypatch, start="--no-token") as shell:
        shell.run_cell_magic("handler", "spy --serve", SPY)
        yield shell


def _send(ip: InteractiveShell, body: bytes, content_type: str) -> tuple[int, str, str]:
    url = f"{ip.run_line_magic('ts_serve', 'status').inference_address}/predictions/spy"
    reply = call("POST", url, body, {"Content-Type": content_type, "X-Trace": "t1"})
    return reply.status, reply.text, reply.headers["x-request-id"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"input": [1, 2.5, "x"]}', "application/json"),
        ("grüße\n".encode(), "text/plain; charset=utf-8"),
        (b"\x00\x01\x02\xfe\xff" * 3, "application/octet-stream"),
        (MULTIPART, "multipart/form-data; boundary=b0"),
    ],
)
def test_replay_gives_the_handler_the_exact_served_rows(ip: InteractiveShell, body: bytes, content_type: str) -> None:
    status, served_answer, request_id = _send(ip, body, content_type)
    assert status == 200
    listed = ip.run_line_magic("ts_serve", "requests spy")
    assert request_id in listed.ids
    result = ip.run_line_magic("ts_serve", f"replay {request_id}")
    assert isinstance(result, Replay) and result.ok
    assert result.trace.result == [served_answer]  # the same repr of the same row
    assert result.trace.headers[0]["X-Trace"] == "t1"
    assert result.served.context is not None
    assert result.trace.system_properties["model_dir"] == result.served.context.model_dir


def test_a_failed_request_replays_with_its_traceback_line(ip: InteractiveShell) -> None:
    status, _, request_id = _send(ip, b'{"fail": true}', "application/json")
    assert status == 503
    failed = ip.run_line_magic("ts_serve", "requests --failed")
    assert failed.ids == [request_id]
    served = failed.requests[0]
    assert served.error is not None and served.error.message == "Prediction failed"
    result = ip.run_line_magic("ts_serve", f"replay {request_id}")
    assert not result.ok and result.trace.failure.stage == "inference"
    assert result.trace.failure.error_type == "KeyError"
    assert 'raise KeyError("asked to fail")' in str(result.trace.failure.where)
    error = result.served.error
    assert error is not None and error.where == 'spy.py, line 16, in inference: raise KeyError("asked to fail")'
    assert 'raise KeyError("asked to fail")' in error.traceback
    assert "served failure at spy.py, line 16" in repr(result)


def test_replay_with_a_fixed_cell(ip: InteractiveShell) -> None:
    _, _, request_id = _send(ip, b'{"fail": true}', "application/json")
    ip.run_cell_magic("handler", "spyfix", SPY.replace('raise KeyError("asked to fail")', "pass"))
    result = ip.run_line_magic("ts_serve", f"replay {request_id} --handler spyfix")
    assert result.ok and result.trace.handler == "spyfix"
    assert result.trace.result == ["{'body': {'fail': True}}"]


def test_debug_opens_the_debugger_at_the_handler_line(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, request_id = _send(ip, b'{"fail": true}', "application/json")
    monkeypatch.setattr(sys, "stdin", io.StringIO("p row['body']\nwhere\nq\n"))
    result = ip.run_line_magic("ts_serve", f"replay {request_id} --debug")
    out = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)  # no colours
    assert not result.ok
    assert "{'fail': True}" in out  # `p row['body']` evaluated in the handler's frame
    assert 'raise KeyError("asked to fail")' in out


def test_stage_timings_of_served_requests(ip: InteractiveShell) -> None:
    for _ in range(5):
        _send(ip, b"{}", "application/json")
    listed = ip.run_line_magic("ts_serve", "requests spy --limit 5")
    client = ip.run_line_magic("ts_serve", "client")
    for rid in listed.ids:
        record = client.request(rid)
        stages = record.stages_ms
        assert {"queue", "transport", "preprocess", "inference", "postprocess", "latency"} <= set(stages)
        assert all(v >= 0 for v in stages.values())
        parts = sum(v for k, v in stages.items() if k != "latency")
        assert parts <= stages["latency"], stages
        assert record.batch_size == 1 and record.gen_id
    timings = ip.run_line_magic("ts_serve", "timings spy")
    [spy] = timings.timings
    table = {t.stage: t for t in spy.stages}
    assert spy.model == "spy" and spy.requests >= 5
    assert table["latency"].n >= 5 and table["preprocess"].p50 <= table["latency"].p99
    assert "preprocess   p50" in repr(timings)


def test_function_handlers_report_a_handle_stage(ip: InteractiveShell) -> None:
    func = "def handle(data, context):\n    return [len(data) for _ in data] if data else None\n"
    ip.run_cell_magic("handler", "fn --serve", func)
    ip.run_line_magic("ts_serve", "predict fn '{}'")
    rid = ip.run_line_magic("ts_serve", "requests fn").ids[-1]
    client = ip.run_line_magic("ts_serve", "client")
    stages = client.request(rid).stages_ms
    assert "handle" in stages and "preprocess" not in stages
    assert json.loads(json.dumps(stages))["handle"] <= stages["latency"]
