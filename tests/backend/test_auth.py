"""TorchServe's defaults (REPORT §6, §7): token authorization on, model API off; plus the job queue
limit of a backend started with job_queue_size=2."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor

from tests.backend.helpers import Backend, call, error_body, wait_until
from ts_notebook.records import LogLine

BAD_TOKEN = error_body(
    400, "InvalidKeyException", "Token Authorization failed. Token either incorrect, expired, or not provided correctly"
)
METHOD_NOT_ALLOWED = error_body(
    405, "MethodNotAllowedException", "Requested method is not allowed, please refer to API document."
)


def test_key_file_is_private_and_announced(auth_backend: Backend) -> None:
    assert auth_backend.info.key_file is not None
    key_file = auth_backend.info.key_file
    assert key_file == auth_backend.run_dir / "key_file.json"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len({auth_backend.keys["inference"], auth_backend.keys["management"], auth_backend.keys["api"]}) == 3


def test_inference_needs_the_inference_key(auth_backend: Backend) -> None:
    inference, management = auth_backend.keys["inference"], auth_backend.keys["management"]
    url = auth_backend.inference + "/predictions/gpucpu"
    for headers in (
        {},
        {"Authorization": inference},  # bare key
        {"Authorization": f"bearer {inference}"},
        {"Authorization": f"Bearer {management}"},  # the other port's key
    ):
        reply = call("POST", url, b"{}", {"Content-Type": "application/json", **headers})
        assert (reply.status, reply.body) == (400, BAD_TOKEN), headers
    reply = call("GET", auth_backend.inference + "/ping")
    assert (reply.status, reply.body) == (400, BAD_TOKEN)

    assert auth_backend.predict("gpucpu").body == b"ok"
    ping = call("GET", auth_backend.inference + "/ping", headers={"Authorization": f"Bearer {inference}"})
    assert ping.status == 200
    assert call("OPTIONS", auth_backend.inference + "/").status == 200  # API description needs no token


def test_handler_sees_the_authorization_header(auth_backend: Backend) -> None:
    seen = auth_backend.predict("gpucpu", mode="echo").json()["headers"]
    assert seen["Authorization"] == f"Bearer {auth_backend.keys['inference']}"


def test_management_needs_the_management_key(auth_backend: Backend) -> None:
    url = auth_backend.management + "/models"
    for key in (None, auth_backend.keys["inference"], auth_backend.keys["api"]):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        reply = call("GET", url, headers=headers)
        assert (reply.status, reply.body) == (400, BAD_TOKEN), key
    reply = auth_backend.mgmt("GET", "/models")
    assert reply.status == 200
    assert [m["modelName"] for m in reply.json()["models"]] == ["gpu3", "gpucpu", "gpuids", "slow"]


def test_metrics_port_needs_no_token(auth_backend: Backend) -> None:
    reply = call("GET", auth_backend.metrics + "/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain")
    assert b"# TYPE ts_inference_requests_total counter" in reply.body


def test_register_and_unregister_are_not_allowed_without_model_api(auth_backend: Backend) -> None:
    reply = auth_backend.register("probe.mar", model_name="x", initial_workers=0)
    assert (reply.status, reply.body) == (405, METHOD_NOT_ALLOWED)
    reply = auth_backend.mgmt("DELETE", "/models/gpucpu")
    assert (reply.status, reply.body) == (405, METHOD_NOT_ALLOWED)
    reply = auth_backend.mgmt("DELETE", "/models/gpucpu/1.0")
    assert (reply.status, reply.body) == (405, METHOD_NOT_ALLOWED)
    # list, describe, scale and set-default still work
    assert auth_backend.mgmt("GET", "/models/gpucpu").status == 200
    reply = auth_backend.mgmt("PUT", "/models/gpucpu/1.0/set-default")
    assert reply.status == 200
    reply = auth_backend.mgmt("PUT", "/models/gpucpu", {"min_worker": 1, "synchronous": "true"})
    assert reply.status == 200
    assert auth_backend.predict("gpucpu").body == b"ok"


NO_WORKER = (
    'Model "slow" has no worker to serve inference request. Please use scale workers API to add workers. '
    "If this is a sequence inference, please check if it is closed, or expired; or exceeds maxSequenceJobQueueSize"
)


def test_full_job_queue_is_refused_at_once(auth_backend: Backend) -> None:
    """1 worker busy for 1.5 s, a queue of 2: of 5 more requests, 2 wait and 3 are refused at once."""
    b = auth_backend
    assert b.describe("slow")[0]["jobQueueStatus"] == {"remainingCapacity": 2, "pendingRequests": 0}
    since = b.events(kind="log").latest
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(b.predict, "slow", mode="sleep", headers={"X-Sleep": "1.5"})
        wait_until(
            lambda: any(
                "sleep-start" in e.message for e in b.events(since=since, kind="log", model="slow").of(LogLine)
            ),
            10,
            "the first request to reach the handler",
        )
        rest = [pool.submit(b.predict, "slow") for _ in range(5)]
        replies = [f.result() for f in rest]
        assert (first.result().status, first.result().body) == (200, b"slept")
    refused = [r for r in replies if r.status == 503]
    served = [r for r in replies if r.status == 200]
    assert (len(served), len(refused)) == (2, 3), [(r.status, r.body) for r in replies]
    for r in refused:
        assert r.body == error_body(503, "ServiceUnavailableException", NO_WORKER)
        assert r.elapsed < 0.75  # at once, not after waiting for the busy worker
    for r in served:
        assert r.body == b"ok"
    assert min(r.elapsed for r in served) > max(r.elapsed for r in refused)
    assert b.describe("slow")[0]["jobQueueStatus"] == {"remainingCapacity": 2, "pendingRequests": 0}


def test_gpu_ids_round_robin(auth_backend: Backend) -> None:
    """TS_NOTEBOOK_GPU_COUNT=2: gpu3's three workers (the first GPU workers) get 0, 1, 0."""
    by_model = {name: auth_backend.workers(name) for name in ("gpu3", "gpucpu", "gpuids", "slow")}
    gpu3 = sorted(by_model["gpu3"], key=lambda w: int(w.id))
    assert [w.gpu_id for w in gpu3] == [0, 1, 0]
    assert [w.system_properties["gpu_id"] for w in gpu3] == [0, 1, 0]
    assert [w["gpu"] for w in auth_backend.describe("gpu3")[0]["workers"]] == [True, True, True]
    # deviceType: cpu -> no GPU at all
    assert [w.system_properties["gpu_id"] for w in by_model["gpucpu"]] == [None]
    assert [w["gpu"] for w in auth_backend.describe("gpucpu")[0]["workers"]] == [False]
    # deviceIds: [1] -> every worker on GPU 1
    assert [w.system_properties["gpu_id"] for w in by_model["gpuids"]] == [1, 1]
    # the handler sees the same gpu_id
    seen = auth_backend.predict("gpuids", mode="whoami").json()
    assert seen["gpu_id"] == 1


def test_worker_threads_are_a_share_of_the_cpus(auth_backend: Backend) -> None:
    cpus = os.cpu_count() or 1
    workers = sorted(
        (w for name in ("gpu3", "gpucpu", "gpuids", "slow") for w in auth_backend.workers(name)),
        key=lambda w: int(w.id),
    )
    assert len(workers) == 7
    for w in workers:
        # the cores are re-shared whenever the number of workers changes: every worker gets the same share
        assert w.threads == max(1, cpus // len(workers)), w
    # and the worker process really runs with that many threads
    seen = auth_backend.predict("slow", mode="whoami").json()
    [slow] = auth_backend.workers("slow")
    assert seen["pid"] == slow.pid
    assert seen["torch_threads"] == slow.threads
    assert seen["omp"] == str(slow.threads)
    assert seen["rayon"] == str(slow.threads)  # fast tokenizers' thread pool gets the same share


def test_workers_together_do_not_oversubscribe_the_cpus(auth_backend: Backend) -> None:
    cpus = os.cpu_count() or 1
    workers = [w for name in ("gpu3", "gpucpu", "gpuids", "slow") for w in auth_backend.workers(name)]
    assert sum(w.threads for w in workers) <= max(cpus, len(workers)), [w.threads for w in workers]


def test_zygote_and_workers_are_found_for_cleanup(auth_backend: Backend) -> None:
    """The fixture's leftover check finds this backend's zygote and every worker by their command line."""
    pids = set(auth_backend.descendants())
    workers = {w.pid for name in ("gpu3", "gpucpu", "gpuids", "slow") for w in auth_backend.workers(name)}
    assert workers < pids
    assert len(pids - workers) == 1  # the zygote
