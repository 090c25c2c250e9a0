"""Health, unknown routes and models, and the API description (REPORT §5.2, §5.4)."""

from __future__ import annotations

from pathlib import Path

from tests.backend.helpers import Backend, build, call, error_body, start_backend, wait_until

RESOURCE_NOT_FOUND = error_body(
    404, "ResourceNotFoundException", "Requested resource is not found, please refer to API document."
)
METHOD_NOT_ALLOWED = error_body(
    405, "MethodNotAllowedException", "Requested method is not allowed, please refer to API document."
)


def test_ping_is_healthy(backend: Backend) -> None:
    reply = call("GET", backend.inference + "/ping")
    assert reply.status == 200
    assert reply.body == b'{\n  "status": "Healthy"\n}\n'
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.headers["cache-control"] == "no-cache; no-store, must-revalidate, private"
    assert reply.headers["pragma"] == "no-cache"
    assert reply.headers["x-request-id"]


def test_unknown_model_and_version(backend: Backend) -> None:
    reply = backend.predict("nope")
    assert reply.status == 404
    assert reply.body == error_body(404, "ModelNotFoundException", "Model not found: nope")
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.headers["connection"].lower() == "close"  # TorchServe closes after every error

    reply = backend.predict("startup", path="/predictions/startup/9.9")
    assert reply.status == 404
    assert reply.body == error_body(
        404, "ModelVersionNotFoundException", "Model version: 9.9 does not exist for model: startup"
    )


def test_unknown_paths_are_resource_not_found(backend: Backend) -> None:
    for method, url in [
        ("POST", backend.inference + "/predictions"),
        ("GET", backend.inference + "/no/such/path"),
        ("GET", backend.inference + "/models"),  # a management route, on the inference port
        ("POST", backend.management + "/predictions/startup"),  # an inference route, on management
        ("GET", backend.management + "/ping"),
        ("POST", backend.inference + "/predictions2/startup"),
    ]:
        reply = call(method, url, b"{}" if method == "POST" else None)
        assert (reply.status, reply.body) == (404, RESOURCE_NOT_FOUND), (method, url)


def test_get_root_is_method_not_allowed(backend: Backend) -> None:
    for base in (backend.inference, backend.management):
        reply = call("GET", base + "/")
        assert (reply.status, reply.body) == (405, METHOD_NOT_ALLOWED)


def test_options_root_is_an_openapi_document(backend: Backend) -> None:
    inference = call("OPTIONS", backend.inference + "/")
    assert inference.status == 200
    doc = inference.json()
    assert doc["openapi"] == "3.0.1"
    for path in ("/ping", "/predictions/{model_name}", "/predictions/{model_name}/{model_version}"):
        assert path in doc["paths"]
    assert call("GET", backend.inference + "/api-description").json() == doc

    management = call("OPTIONS", backend.management + "/")
    assert management.status == 200
    doc = management.json()
    assert doc["openapi"] == "3.0.1"
    for path in ("/models", "/models/{model_name}", "/models/{model_name}/{model_version}"):
        assert path in doc["paths"]


def test_ping_turns_unhealthy_when_a_model_stays_below_min_workers(tmp_path: Path) -> None:
    """TorchServe's rule: a default version with fewer workers than minWorkers for longer than its
    maxRetryTimeoutInSec makes /ping answer 500 Unhealthy (reference: scripts/02d_unhealthy.py)."""
    store = tmp_path / "store"
    build(store, "unhealthy", yaml_text="minWorkers: 1\nmaxWorkers: 1\nmaxRetryTimeoutInSec: 1\n")
    b = start_backend(tmp_path / "run", store, {}, ["--disable-token-auth", "--models", "badinit_ping=unhealthy.mar"])
    try:
        assert b.describe("badinit_ping")[0]["workers"] == []  # its initialize() raises, so no worker
        reply = wait_until(lambda: (r := call("GET", b.inference + "/ping")).status == 500 and r, 15, "Unhealthy")
        assert reply.body == b'{\n  "status": "Unhealthy"\n}\n'
    finally:
        b.stop()
