"""Stateful models with sequence batching, and clientTimeoutInMills, side by side with TorchServe 0.12.0:
the same archives (model-config.yaml inside), the same scripted requests, answers compared."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ts_notebook.archive import build_archive

from .embedded import http, side_by_side

pytestmark = pytest.mark.compat

STATEFUL = """
import os
import time

from ts.torch_handler.base_handler import BaseHandler


class Summer(BaseHandler):
    def initialize(self, context):
        self.context = context
        self.totals = {}
        self.initialized = True

    def handle(self, data, context):
        out = []
        for idx, row in enumerate(data):
            seq = context.get_sequence_id(idx)
            body = row.get("data") or row.get("body")
            value = int(body.decode() if isinstance(body, (bytes, bytearray)) else body)
            if value == 9:
                time.sleep(0.4)  # a slow request: the sequence's queue fills behind it
            self.totals[seq] = self.totals.get(seq, 0) + value
            out.append({"seq": seq, "total": self.totals[seq], "pid": os.getpid(), "n": len(data),
                        "start": context.get_request_header(idx, context.header_key_sequence_start),
                        "end": context.get_request_header(idx, context.header_key_sequence_end)})
        return out
"""
STATEFUL_CONFIG = (
    "minWorkers: 2\nmaxWorkers: 2\nbatchSize: 2\nmaxBatchDelay: 50\nsequenceMaxIdleMSec: 1500\n"
    "maxSequenceJobQueueSize: 2\nmaxNumSequence: 4\nsequenceBatching: true\n"
)
SLOW = """
import time


def handle(data, context):
    if data is None:
        return None
    body = data[0]["body"]
    time.sleep(float(body.decode() if isinstance(body, bytes) else body))
    return ["done"]
"""
SLOW_CONFIG = "minWorkers: 1\nmaxWorkers: 1\nclientTimeoutInMills: 300\n"
TEXT = {"Content-Type": "text/plain"}
STATEFUL_KEYS = (
    "stateful", "sequenceMaxIdleMSec", "sequenceTimeoutMSec", "maxNumSequence", "maxSequenceJobQueueSize",
    "clientTimeoutInMills", "batchSize", "minWorkers",
)  # fmt: skip


@pytest.fixture(scope="module")
def servers(ts_ref_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[str, str]]]:
    folder = tmp_path_factory.mktemp("stateful-src")
    archives = []
    for name, code, config in (("summer", STATEFUL, STATEFUL_CONFIG), ("slowct", SLOW, SLOW_CONFIG)):
        (folder / f"{name}.py").write_text(code)
        (folder / f"{name}.yaml").write_text(config)
        spec = {"config_file": str(folder / f"{name}.yaml"), "export_path": folder}
        archives.append(build_archive(name, "1.0", str(folder / f"{name}.py"), **spec).path)
    root = tmp_path_factory.mktemp("stateful-ours")
    queries = tuple(f"url={archive.name}&synchronous=true" for archive in archives)
    with side_by_side(ts_ref_venv, root, archives, registrations=queries) as (ts, ours):
        yield {"ts": (ts.inference_url, ts.management_url), "ours": (ours.inference_url, ours.management_url)}


def _session(inference: str) -> list[Any]:
    """The scripted conversation; generated sequence ids and pids are normalised, pids checked per sequence."""
    base = f"{inference}/predictions/summer"
    pids: dict[str, set[int]] = {}

    def send(body: bytes, **headers: str) -> Any:
        status, raw, _ = http("POST", base, body, {**TEXT, **headers})
        if status != 200:
            return status, json.loads(raw)["message"]
        answer = json.loads(raw)
        pids.setdefault(answer["seq"], set()).add(answer.pop("pid"))
        answer["seq"] = re.sub(r"^ts-seq-[0-9a-f-]{36}$", "ts-seq-<generated>", answer["seq"])
        return status, answer

    script = [send(b"1")]
    for _ in range(3):
        script += [send(b"2", ts_request_sequence_id="A"), send(b"3", ts_request_sequence_id="B")]
    script.append(send(b"4", ts_request_sequence_id="A", ts_request_sequence_end="true"))
    script.append(send(b"4", ts_request_sequence_id="A"))  # a new sequence of the same name
    script.append(send(b"4", ts_request_sequence_id="C", ts_request_sequence_start="true"))
    script.append(send(b"1", ts_request_sequence_id="D"))  # a fifth open sequence: refused
    with ThreadPoolExecutor(5) as pool:  # one slow request on B, then four more: two wait, two are refused
        first = pool.submit(send, b"9", ts_request_sequence_id="B")
        time.sleep(0.15)
        burst = list(pool.map(lambda _: send(b"1", ts_request_sequence_id="B"), range(4)))
        script.append(first.result())
        script.append(sorted(str(r) for r in burst))
    time.sleep(2.0)  # every sequence idles past sequenceMaxIdleMSec and closes
    script.append(send(b"5", ts_request_sequence_id="D"))
    assert all(len(p) == 1 for p in pids.values()), pids  # a sequence stays on one worker
    assert len(set().union(*pids.values())) == 2, pids  # and sequences spread over both workers
    return script


def test_sequence_batching_answers_as_in_torchserve(servers: dict[str, tuple[str, str]]) -> None:
    scripts = {server: _session(urls[0]) for server, urls in servers.items()}
    differ = [(i, a, b) for i, (a, b) in enumerate(zip(scripts["ts"], scripts["ours"], strict=True)) if a != b]
    assert not differ, "\n".join(f"step {i}: TorchServe {a} | ours {b}" for i, a, b in differ)
    assert scripts["ts"][-1] == (200, {"seq": "D", "total": 5, "n": 1, "start": None, "end": None})


def test_describe_shows_the_sequence_and_timeout_settings(servers: dict[str, tuple[str, str]]) -> None:
    for model in ("summer", "slowct"):
        described = {}
        for server, (_, management) in servers.items():
            entry = json.loads(http("GET", f"{management}/models/{model}")[1])[0]
            described[server] = {k: entry[k] for k in STATEFUL_KEYS}
        assert described["ours"] == described["ts"]


def test_client_timeout_drops_late_answers(servers: dict[str, tuple[str, str]]) -> None:
    """Within clientTimeoutInMills both answer; past it TorchServe drops the answer and never replies
    (the client waits on forever), while ours replies 408 at once: a documented difference."""
    for server, (inference, _) in servers.items():
        status, body, _ = http("POST", f"{inference}/predictions/slowct", b"0", TEXT)
        assert (status, body) == (200, b"done"), server
    try:
        http("POST", f"{servers['ts'][0]}/predictions/slowct", b"0.6", TEXT, timeout=3)
        pytest.fail("TorchServe answered a request past clientTimeoutInMills")
    except TimeoutError:
        pass
    began = time.monotonic()
    status, body, _ = http("POST", f"{servers['ours'][0]}/predictions/slowct", b"0.6", TEXT, timeout=3)
    assert status == 408 and b"clientTimeoutInMills (300 ms)" in body
    assert time.monotonic() - began < 2
