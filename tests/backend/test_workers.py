"""Worker supervision: a batch past responseTimeout kills its worker (500 "Worker died.", REPORT
§5.2), a worker that crashes is replaced, and neither touches the server or other models."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.backend.conftest import Models
from tests.backend.helpers import Backend, call, error_body, wait_until
from ts_notebook.records import LogLine, WorkerChange

WORKER_DIED = error_body(500, "InternalServerException", "Worker died.")


def _replaced(backend: Backend, name: str, old: list[int]) -> list[int]:
    pids = backend.ready_pids(name)
    return pids if pids and not set(pids) & set(old) else []


def test_response_timeout_kills_and_replaces_the_worker(backend: Backend, models: Models) -> None:
    models.register("probe.mar", "slowpoke", initial_workers=1, response_timeout=1)
    assert backend.describe("slowpoke")[0]["responseTimeout"] == 1
    old = backend.ready_pids("slowpoke")
    since = backend.events().latest

    reply = backend.predict("slowpoke", mode="sleep", headers={"X-Sleep": "20"})
    assert (reply.status, reply.body) == (500, WORKER_DIED)
    assert 0.9 <= reply.elapsed < 3.0

    new = wait_until(lambda: _replaced(backend, "slowpoke", old), 15, "a replacement worker")
    assert len(new) == 1
    assert backend.predict("slowpoke").body == b"ok"
    statuses = [e.status for e in backend.events(since=since, kind="worker", model="slowpoke").of(WorkerChange)]
    assert statuses[:1] == ["TIMEOUT"] and statuses[-1] == "READY"


@pytest.mark.parametrize("mode", ["exit", "segv"])
def test_crashing_worker_is_replaced(backend: Backend, models: Models, mode: str) -> None:
    name = f"crash_{mode}"
    models.register("probe.mar", name, initial_workers=1)
    models.register("probe.mar", "bystander", initial_workers=1)
    old = backend.ready_pids(name)
    bystander = backend.ready_pids("bystander")

    reply = backend.predict(name, mode=mode)
    assert (reply.status, reply.body) == (500, WORKER_DIED)
    assert reply.elapsed < 5.0  # promptly, not after responseTimeout (120 s)

    assert backend.predict("bystander").body == b"ok"
    assert call("GET", backend.inference + "/ping").status == 200
    new = wait_until(lambda: _replaced(backend, name, old), 15, "a replacement worker")
    assert len(new) == 1
    assert backend.predict(name).body == b"ok"
    assert backend.ready_pids("bystander") == bystander


def test_died_event_carries_the_exit_code(backend: Backend, models: Models) -> None:
    models.register("probe.mar", "crash_code", initial_workers=1)
    since = backend.events().latest
    assert backend.predict("crash_code", mode="exit").status == 500
    died = wait_until(
        lambda: [
            e
            for e in backend.events(since=since, kind="worker", model="crash_code").of(WorkerChange)
            if e.status == "DIED"
        ],
        10,
        "the DIED event",
    )
    assert died[0].exit_code == 3


def test_request_queued_behind_a_timeout_is_served_by_the_replacement(backend: Backend, models: Models) -> None:
    models.register("probe.mar", "slowqueue", initial_workers=1, response_timeout=1)
    since = backend.events(kind="log").latest
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(backend.predict, "slowqueue", mode="sleep", headers={"X-Sleep": "20"})
        wait_until(
            lambda: any(
                "sleep-start" in e.message
                for e in backend.events(since=since, kind="log", model="slowqueue").of(LogLine)
            ),
            10,
            "the slow request to reach the handler",
        )
        second = pool.submit(backend.predict, "slowqueue")  # waits in the queue behind the slow one
        assert (first.result().status, first.result().body) == (500, WORKER_DIED)
        reply = second.result()
    assert (reply.status, reply.body) == (200, b"ok")


def test_request_while_the_worker_starts_waits_for_it(backend: Backend, models: Models) -> None:
    models.register("probe.mar", "slowinit", expect=202, initial_workers=1, synchronous="false")
    reply = backend.predict("slowinit")
    assert (reply.status, reply.body) == (200, b"ok")
