"""Batching (REPORT §4.2 f): batchSize 4 and maxBatchDelay 200 from the register call."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from tests.backend.conftest import Models
from tests.backend.helpers import Backend, error_body


def test_concurrent_requests_are_batched(backend: Backend, models: Models) -> None:
    models.register("probe.mar", "batch4", initial_workers=1, batch_size=4, max_batch_delay=200)
    [desc] = backend.describe("batch4")
    assert (desc["batchSize"], desc["maxBatchDelay"]) == (4, 200)
    [worker] = backend.workers("batch4")
    assert worker.system_properties["batch_size"] == 4

    with ThreadPoolExecutor(10) as pool:
        replies = list(pool.map(lambda _: backend.predict("batch4", mode="batch"), range(10)))
    assert [r.status for r in replies] == [200] * 10
    lengths = [r.json()["batch_len"] for r in replies]
    counts = Counter(lengths)
    # a batch of k requests answers k of them with batch_len k: e.g. [4, 4, 2] -> eight 4s and two 2s
    assert all(count % k == 0 for k, count in counts.items()), lengths
    batches = sorted((k for k, count in counts.items() for _ in range(count // k)), reverse=True)
    # the ten arrive well within the 200 ms delay: two full batches of 4, then the 2 left over
    assert batches == [4, 4, 2], lengths
    assert {r.json()["pid"] for r in replies} == set(backend.ready_pids("batch4"))  # all on the one worker
    assert len({r.headers["x-request-id"] for r in replies}) == 10


def test_single_request_waits_for_the_batch_delay(backend: Backend, models: Models) -> None:
    models.register("probe.mar", "batchwait", initial_workers=1, batch_size=4, max_batch_delay=200)
    reply = backend.predict("batchwait", mode="batch")
    assert reply.json()["batch_len"] == 1
    assert reply.elapsed >= 0.19


def test_handler_error_fails_every_request_of_the_batch(backend: Backend, models: Models) -> None:
    models.register("probe.mar", "batchfail", initial_workers=1, batch_size=4, max_batch_delay=200)
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda _: backend.predict("batchfail", mode="raise"), range(4)))
    for r in replies:
        assert (r.status, r.body) == (503, error_body(503, "InternalServerException", "Prediction failed"))
