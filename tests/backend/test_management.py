"""The management API (REPORT §6): list, describe, register, scale, set-default, unregister, and the
archive cache (the same content is extracted once)."""

from __future__ import annotations

import shutil

from tests.backend.conftest import Models
from tests.backend.helpers import Backend, alive, error_body, status_body, wait_until

# Every key of TorchServe 0.12's describe answer, in its order (REPORT §6).
DESCRIBE_KEYS = [
    "modelName", "modelVersion", "modelUrl", "runtime", "minWorkers", "maxWorkers", "batchSize",
    "maxBatchDelay", "responseTimeout", "startupTimeout", "maxRetryTimeoutInSec", "clientTimeoutInMills",
    "parallelType", "parallelLevel", "deviceType", "continuousBatching", "useJobTicket", "useVenv", "stateful",
    "sequenceMaxIdleMSec", "sequenceTimeoutMSec", "maxNumSequence", "maxSequenceJobQueueSize",
    "loadedAtStartup", "workers", "jobQueueStatus",
]  # fmt: skip
WORKER_KEYS = ["id", "startTime", "status", "memoryUsage", "pid", "gpu", "gpuUsage"]


def test_register_answers_and_describe(backend: Backend, models: Models) -> None:
    reply = models.register("probe.mar", "reg1", initial_workers=1, synchronous="true")
    assert reply.body == status_body('Model "reg1" Version: 1.0 registered with 1 initial workers')
    assert reply.headers["content-type"].startswith("application/json")

    [desc] = backend.describe("reg1")
    assert list(desc) == DESCRIBE_KEYS
    assert desc["modelName"] == "reg1"
    assert desc["modelVersion"] == "1.0"
    assert desc["modelUrl"] == "probe.mar"
    assert (desc["minWorkers"], desc["maxWorkers"], desc["batchSize"]) == (1, 1, 1)
    assert (desc["maxBatchDelay"], desc["responseTimeout"], desc["maxRetryTimeoutInSec"]) == (100, 120, 300)
    assert desc["deviceType"] == "cpu"
    assert desc["loadedAtStartup"] is False
    assert desc["jobQueueStatus"] == {"remainingCapacity": 100, "pendingRequests": 0}
    [worker] = desc["workers"]
    assert list(worker) == WORKER_KEYS
    assert worker["status"] == "READY"
    assert worker["pid"] > 0
    assert worker["gpu"] is False
    assert backend.predict("reg1").body == b"ok"

    # synchronous defaults to true: the worker is READY when the answer comes
    reply = models.register("probe.mar", "reg2", initial_workers=1)
    assert reply.body == status_body('Model "reg2" Version: 1.0 registered with 1 initial workers')
    assert [w["status"] for w in backend.describe("reg2")[0]["workers"]] == ["READY"]


def test_startup_model_is_described_as_loaded_at_startup(backend: Backend) -> None:
    [desc] = backend.describe("startup")
    assert desc["loadedAtStartup"] is True
    assert (desc["minWorkers"], desc["maxWorkers"]) == (1, 1)  # default_workers_per_model=1
    assert [w["status"] for w in desc["workers"]] == ["READY"]


def test_register_with_zero_workers_and_settings_from_model_config(backend: Backend, models: Models) -> None:
    reply = models.register("probe.mar", "zero", initial_workers=0)
    assert reply.body == status_body(
        'Model "zero" Version: 1.0 registered with 0 initial workers.'
        " Use scale workers API to add workers for the model."
    )
    assert backend.describe("zero")[0]["workers"] == []
    # initial_workers omitted: model-config.yaml's minWorkers, else config.properties'
    # default_workers_per_model (1 on this backend), as in TorchServe
    reply = models.register("probe.mar", "zero2")
    assert reply.body == status_body('Model "zero2" Version: 1.0 registered with 1 initial workers')
    reply = models.register("cfg.mar", "cfg")
    assert reply.body == status_body('Model "cfg" Version: 1.0 registered with 1 initial workers')
    [desc] = backend.describe("cfg")
    assert (desc["batchSize"], desc["maxBatchDelay"], desc["responseTimeout"]) == (2, 50, 30)
    assert len(desc["workers"]) == 1


def test_register_errors(backend: Backend, models: Models) -> None:
    models.register("probe.mar", "dup", initial_workers=0)
    reply = models.register("probe.mar", "dup", expect=409, initial_workers=0)
    assert reply.body == error_body(
        409, "ConflictStatusException", "Model version 1.0 is already registered for model dup"
    )

    reply = backend.mgmt("POST", "/models")
    assert (reply.status, reply.body) == (400, error_body(400, "BadRequestException", "Parameter url is required."))

    reply = backend.register("nonexistent.mar")
    assert reply.status == 404
    assert reply.body == error_body(404, "ModelNotFoundException", "Model not found at: nonexistent.mar")

    reply = backend.register("http://127.0.0.1:9/x.mar")
    assert reply.status == 400
    body = reply.json()
    assert (body["code"], body["type"]) == (400, "DownloadArchiveException")
    # TorchServe's message, which the backend extends with why and what to do instead
    assert body["message"].startswith("Failed to download archive from: http://127.0.0.1:9/x.mar")
    assert backend.mgmt("GET", "/models/x").status == 404


def test_register_failure_in_initialize_keeps_model_with_no_workers(backend: Backend, models: Models) -> None:
    reply = models.register("probe.mar", "badinit", expect=500, initial_workers=1)
    body = reply.json()
    assert (body["code"], body["type"]) == (500, "InternalServerException")
    assert body["message"].startswith("Failed to start workers for model badinit version: 1.0")
    assert "boom from initialize()" in body["message"]  # the real cause, not only TorchServe's generic 500
    assert "at probe_handler.py, line " in body["message"]  # and the handler line that raised
    [desc] = backend.describe("badinit")
    assert (desc["minWorkers"], desc["maxWorkers"], desc["workers"]) == (0, 0, [])
    assert backend.predict("badinit").status == 503
    assert backend.mgmt("DELETE", "/models/badinit").status == 200


def test_worker_that_exits_during_load(backend: Backend, models: Models) -> None:
    reply = models.register("probe.mar", "exitinit", expect=500, initial_workers=1)
    message = reply.json()["message"]
    assert message.startswith("Failed to start workers for model exitinit version: 1.0")
    assert "the worker process exited while loading the model" in message
    assert backend.describe("exitinit")[0]["workers"] == []
    assert backend.predict("startup").status == 200  # the server and other models are unaffected


def test_register_asynchronously(backend: Backend, models: Models) -> None:
    reply = models.register("probe.mar", "async1", expect=202, initial_workers=1, synchronous="false")
    assert reply.body == status_body("Processing worker updates...")
    wait_until(lambda: backend.ready_pids("async1"), 15, "the asynchronously registered worker")
    assert backend.predict("async1").body == b"ok"


def test_list_models_with_pagination(backend: Backend, models: Models) -> None:
    for name in ("list_a", "list_b", "list_c"):
        models.register("probe.mar", name, initial_workers=0)
    reply = backend.mgmt("GET", "/models")
    assert reply.status == 200
    full = reply.json()
    assert list(full) == ["models"]  # no nextPageToken when everything fits
    names = [m["modelName"] for m in full["models"]]
    assert names == sorted(names)
    assert {"list_a", "list_b", "list_c", "startup"} <= set(names)
    assert {"modelName": "list_a", "modelUrl": "probe.mar"} in full["models"]

    page = backend.mgmt("GET", "/models", {"limit": 1}).json()
    assert list(page) == ["nextPageToken", "models"]
    assert page == {"nextPageToken": "1", "models": full["models"][:1]}
    # walk the pages two at a time: the tokens are offsets and the pages add up to the full list
    seen, token = [], "0"
    while True:
        page = backend.mgmt("GET", "/models", {"limit": 2, "next_page_token": token}).json()
        assert len(page["models"]) <= 2
        seen += page["models"]
        if "nextPageToken" not in page:
            break
        assert page["nextPageToken"] == str(int(token) + 2)
        token = page["nextPageToken"]
    assert seen == full["models"]


def test_versions_describe_set_default_and_unregister(backend: Backend, models: Models) -> None:
    models.register("vers.mar", "vers", initial_workers=1)
    reply = models.register("vers_2.0.mar", "vers", initial_workers=1)
    assert reply.body == status_body('Model "vers" Version: 2.0 registered with 1 initial workers')

    assert [d["modelVersion"] for d in backend.describe("vers")] == ["1.0"]  # the default version only
    assert [d["modelVersion"] for d in backend.describe("vers", "all")] == ["1.0", "2.0"]
    assert [d["modelVersion"] for d in backend.describe("vers", "2.0")] == ["2.0"]
    assert backend.describe("vers", "2.0")[0]["modelUrl"] == "vers_2.0.mar"
    reply = backend.mgmt("GET", "/models/nope")
    assert (reply.status, reply.body) == (404, error_body(404, "ModelNotFoundException", "Model not found: nope"))
    reply = backend.mgmt("GET", "/models/vers/7.7")
    assert reply.status == 404
    assert reply.body == error_body(
        404, "ModelVersionNotFoundException", "Model version: 7.7 does not exist for model: vers"
    )

    # predictions: default version, or the one named
    who = backend.predict("vers", mode="whoami").json()["pid"]
    assert who in backend.ready_pids("vers") and who not in [
        w["pid"] for w in backend.describe("vers", "2.0")[0]["workers"]
    ]
    who2 = backend.predict("vers", mode="whoami", path="/predictions/vers/2.0").json()["pid"]
    assert who2 in [w["pid"] for w in backend.describe("vers", "2.0")[0]["workers"]]

    reply = backend.mgmt("PUT", "/models/vers/2.0/set-default")
    assert reply.status == 200
    assert reply.body == status_body('Default version successfully updated for model "vers" to "2.0"')
    assert [d["modelVersion"] for d in backend.describe("vers")] == ["2.0"]
    assert backend.predict("vers", mode="whoami").json()["pid"] == who2

    reply = backend.mgmt("PUT", "/models/vers/9.9/set-default")
    assert reply.status == 404
    assert reply.body == error_body(
        404, "ModelVersionNotFoundException", "Model version 9.9 does not exist for model vers"
    )

    reply = backend.mgmt("DELETE", "/models/vers/2.0")
    assert reply.status == 403
    assert reply.body == error_body(403, "InvalidModelVersionException", "Cannot remove default version for model vers")

    reply = backend.mgmt("DELETE", "/models/vers/5.5")
    assert reply.status == 404
    assert reply.body == error_body(
        404, "ModelVersionNotFoundException", "Model version: 5.5 does not exist for model: vers"
    )
    reply = backend.mgmt("DELETE", "/models/nope")
    assert (reply.status, reply.body) == (404, error_body(404, "ModelNotFoundException", "Model not found: nope"))

    reply = backend.mgmt("DELETE", "/models/vers/1.0")
    assert (reply.status, reply.body) == (200, status_body('Model "vers" unregistered'))
    assert [d["modelVersion"] for d in backend.describe("vers", "all")] == ["2.0"]
    wait_until(lambda: not alive(who), 10, "the unregistered version's worker process to exit")
    assert who not in backend.worker_pids()
    reply = backend.mgmt("DELETE", "/models/vers")
    assert (reply.status, reply.body) == (200, status_body('Model "vers" unregistered'))
    assert backend.mgmt("GET", "/models/vers").status == 404
    assert backend.predict("vers").status == 404


def test_scale_up_and_down(backend: Backend, models: Models) -> None:
    models.register("probe.mar", "scaled", initial_workers=1)
    reply = backend.mgmt("PUT", "/models/scaled", {"min_worker": 2, "synchronous": "true"})
    assert (reply.status, reply.body) == (200, status_body("Workers scaled to 2 for model: scaled"))
    [desc] = backend.describe("scaled")
    assert (desc["minWorkers"], len(desc["workers"])) == (2, 2)
    assert all(w["status"] == "READY" for w in desc["workers"])

    reply = backend.mgmt("PUT", "/models/scaled", {"min_worker": 1, "max_worker": 1, "synchronous": "true"})
    assert (reply.status, reply.body) == (200, status_body("Workers scaled to 1 for model: scaled"))
    [desc] = backend.describe("scaled")
    assert (desc["minWorkers"], desc["maxWorkers"], len(desc["workers"])) == (1, 1, 1)
    assert backend.predict("scaled").body == b"ok"

    # synchronous defaults to false for scaling
    reply = backend.mgmt("PUT", "/models/scaled", {"min_worker": 2})
    assert (reply.status, reply.body) == (202, status_body("Processing worker updates..."))
    wait_until(lambda: len(backend.ready_pids("scaled")) == 2, 15, "two READY workers")

    reply = backend.mgmt("PUT", "/models/scaled/1.0", {"min_worker": 0, "synchronous": "true"})
    assert (reply.status, reply.body) == (200, status_body("Workers scaled to 0 for model: scaled, version: 1.0"))
    assert backend.describe("scaled")[0]["workers"] == []

    reply = backend.mgmt("PUT", "/models/nope", {"min_worker": 1})
    assert (reply.status, reply.body) == (404, error_body(404, "ModelNotFoundException", "Model not found: nope"))


def test_same_archive_content_is_extracted_once(backend: Backend, models: Models) -> None:
    cache = backend.run_dir / "models"
    models.register("probe.mar", "cache1", initial_workers=0)
    before = sorted(p.name for p in cache.iterdir())
    models.register("probe.mar", "cache2", initial_workers=0)
    backend.mgmt("DELETE", "/models/cache1")
    models.register("probe.mar", "cache1", initial_workers=0)
    copy = backend.store / "probe_copy.mar"  # same bytes under another name
    shutil.copyfile(backend.store / "probe.mar", copy)
    try:
        models.register("probe_copy.mar", "cache3", initial_workers=0)
    finally:
        copy.unlink()
    assert sorted(p.name for p in cache.iterdir()) == before
    model_dirs = {str(w.system_properties["model_dir"]) for w in backend.workers("startup")}
    assert len(model_dirs) == 1 and model_dirs.pop().startswith(str(cache))
