"""Live handlers through a real IPython shell and a real backend: re-running a ``%%handler --serve``
cell changes the served answer with zero failed requests under load, in place or blue/green; a
broken cell leaves the old code serving; reloads during a forming batch and with two workers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from tests.backend.helpers import call, wait_until
from tests.shells import notebook_shell
from ts_notebook.live import LiveReload

HANDLER = """
from ts.torch_handler.base_handler import BaseHandler


class Echo(BaseHandler):
    def initialize(self, context):
        self.loads = getattr(self, "loads", 0) + 1
        self.pid = __import__("os").getpid()
        self.initialized = True

    def preprocess(self, data):
        return [row.get("body") for row in data]

    def inference(self, rows):
        return rows

    def postprocess(self, rows):
        return [{"answer": ANSWER, "pid": self.pid, "batch": len(rows)} for _ in rows]
"""


def cell(answer: str, extra_init: str = "") -> str:
    code = HANDLER.replace("ANSWER", repr(answer))
    return code.replace("self.initialized = True", f"self.initialized = True{extra_init}")


@pytest.fixture
def ip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    with notebook_shell(tmp_path, monkeypatch, start="--no-token") as shell:
        yield shell


def _client(ip: InteractiveShell):  # type: ignore[no-untyped-def]
    return ip.run_line_magic("ts_serve", "client")


def _url(ip: InteractiveShell, model: str) -> str:
    return f"{ip.run_line_magic('ts_serve', 'status').inference_address}/predictions/{model}"


class Load:
    """Bounded concurrent clients sending all the time (at most ``seconds``), recording every answer."""

    def __init__(self, url: str, clients: int = 4, seconds: float = 60.0) -> None:
        self.url, self.clients, self.deadline = url, clients, time.monotonic() + seconds
        self.answers: list[tuple[int, bytes]] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(clients)

    def _client(self) -> None:
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            reply = call("POST", self.url, b'{"x": 1}', {"Content-Type": "application/json"}, timeout=30)
            with self._lock:
                self.answers.append((reply.status, reply.body))

    def __enter__(self) -> Load:
        for _ in range(self.clients):
            self._pool.submit(self._client)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._pool.shutdown(wait=True)

    def seen(self) -> list[str]:
        with self._lock:
            return [json.loads(body)["answer"] if status == 200 else f"HTTP {status}" for status, body in self.answers]

    def wait_for(self, answer: str) -> None:
        wait_until(lambda: answer in self.seen()[-20:], 30, f"answer {answer!r} under load")


def test_edit_the_cell_and_the_served_answer_changes_with_no_failed_request(ip: InteractiveShell) -> None:
    first = ip.run_cell_magic("handler", "echo --serve", cell("v1"))
    assert isinstance(first, LiveReload) and first.registered
    ip.run_line_magic("ts_serve", "scale echo --min-workers 2")
    with Load(_url(ip, "echo")) as load:
        load.wait_for("v1")
        in_place = ip.run_cell_magic("handler", "echo --serve", cell("v2"))
        load.wait_for("v2")
        blue_green = ip.run_cell_magic("handler", "echo --serve", cell("v3", "\n        self.extra = 1"))
        load.wait_for("v3")
    seen = load.seen()
    assert all(s in ("v1", "v2", "v3") for s in seen), sorted(set(seen))
    # Once an answer moved on, it never goes back to older code.
    last = [seen.index(v) for v in ("v1", "v2", "v3")]
    assert last == sorted(last)
    assert in_place.report.mode == "in-place" and in_place.report.workers == 2
    assert blue_green.report.mode == "blue-green" and blue_green.report.workers == 2
    assert "initialize changed" in blue_green.report.note
    status = ip.run_line_magic("ts_serve", "status")
    workers = status.models[0]["workers"]
    assert len(workers) == 2 and {status.generations[str(w["id"])] for w in workers} == {blue_green.report.gen_id}


def test_in_place_swap_keeps_the_loaded_state(ip: InteractiveShell) -> None:
    ip.run_cell_magic("handler", "echo --serve", cell("v1"))
    before = json.loads(call("POST", _url(ip, "echo"), b"{}", {"Content-Type": "application/json"}).body)
    report = ip.run_cell_magic("handler", "echo --serve", cell("v2")).report
    after = json.loads(call("POST", _url(ip, "echo"), b"{}", {"Content-Type": "application/json"}).body)
    assert report.mode == "in-place"
    assert after == {**before, "answer": "v2"}  # same process, initialize not run again


def test_a_cell_that_fails_to_load_leaves_the_old_code_serving(ip: InteractiveShell) -> None:
    ip.run_cell_magic("handler", "echo --serve", cell("v1"))
    run_dir = ip.find_magic("ts_serve").__self__.session.current().info.run_dir
    generations = sorted((run_dir / "generations").rglob("MANIFEST.json"))
    broken = cell("v2", "\n        raise RuntimeError('weights missing')")
    with pytest.raises(UsageError) as err:
        ip.run_cell_magic("handler", "echo --serve", broken)
    assert sorted((run_dir / "generations").rglob("MANIFEST.json")) == generations  # its folder is gone
    message = str(err.value)
    assert "did not load: RuntimeError: weights missing at echo.py, line 10, in initialize" in message
    assert "keeps serving" in message and "raise RuntimeError('weights missing')" in message
    assert ip.run_line_magic("ts_serve", "predict echo '{}'")["answer"] == "v1"


def test_a_failing_dry_run_is_not_served(ip: InteractiveShell) -> None:
    ip.run_cell_magic("handler", "echo --serve", cell("v1"))
    broken = cell("v2").replace("return rows\n", "return rows[5]\n")
    trace = ip.run_cell_magic("handler", """echo --serve --test '{"x": 1}'""", broken)
    assert not trace.ok and trace.failure.stage == "inference"
    assert ip.run_line_magic("ts_serve", "predict echo '{}'")["answer"] == "v1"


def test_reload_during_a_forming_batch_serves_every_request(ip: InteractiveShell, tmp_path: Path) -> None:
    ip.run_cell_magic("handler", "echo --serve", cell("v1"))
    ip.run_line_magic("ts_serve", "unregister echo")
    store = tmp_path / ".ts_notebook" / "served"
    ip.run_line_magic("ts_serve", f"register {store}/echo --batch-size 4 --max-batch-delay 1500")
    url = _url(ip, "echo")
    with ThreadPoolExecutor(2) as pool:
        waiting = [pool.submit(call, "POST", url, b"{}", {"Content-Type": "application/json"}) for _ in range(2)]
        client = ip.run_line_magic("ts_serve", "status")
        holding = lambda: sum(w.holding for v in _client(ip).workers() for w in v.workers)  # noqa: E731
        wait_until(lambda: holding() == 2, 5, "both requests in the forming batch")  # it waits 1.5 s for more
        assert not any(f.done() for f in waiting) and client.models[0]["batchSize"] == 4
        report = ip.run_cell_magic("handler", "echo --serve", cell("v2", "\n        self.extra = 1")).report
        replies = [f.result(30) for f in waiting]
    assert report.mode == "blue-green"
    assert [r.status for r in replies] == [200, 200]
    assert {json.loads(r.body)["answer"] for r in replies} <= {"v1", "v2"}
    assert ip.run_line_magic("ts_serve", "predict echo '{}'")["answer"] == "v2"


def test_reload_from_a_rebuilt_archive(
    ip: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "h.py").write_text(cell("v1"))
    ip.run_line_magic("mar_build", "--model-name arch -v 1.0 --handler h.py")
    ip.run_line_magic("ts_serve", "register arch.mar")
    assert ip.run_line_magic("ts_serve", "predict arch '{}'")["answer"] == "v1"
    (tmp_path / "h.py").write_text(cell("v2"))
    ip.run_line_magic("mar_build", "--model-name arch -v 1.0 --handler h.py -f")
    assert "note: the running backend serves arch from arch.mar" in capsys.readouterr().out
    assert ip.run_line_magic("ts_serve", "predict arch '{}'")["answer"] == "v1"  # until reloaded
    status = ip.run_line_magic("ts_serve", "reload arch")
    assert "now serves generation" in status and "in place" in status
    assert ip.run_line_magic("ts_serve", "predict arch '{}'")["answer"] == "v2"
    described = ip.run_line_magic("ts_serve", "describe arch")[0]
    assert described["modelVersion"] == "1.0" and described["minWorkers"] == 1
