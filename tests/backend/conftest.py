"""Shared fixtures: the archives, one plain backend for most tests (token auth off, model API on)
and one TorchServe-default backend (token auth on, model API off) that also pretends to have two
GPUs and has a tiny job queue. Both are real subprocesses on free loopback ports, started once per
session and stopped at the end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.backend.helpers import Backend, Reply, build, start_backend

MAX_REQUEST_SIZE = 100_000


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model store with every archive the tests register (all around handlers/probe_handler.py)."""
    store = tmp_path_factory.mktemp("backend") / "store"
    build(store, "probe")
    build(store, "vers", "1.0")
    build(store, "vers", "2.0", subdir="v2")
    # TorchServe finds a relative url by its last part in the store: version 2 gets a name of its own
    (store / "v2" / "vers.mar").rename(store / "vers_2.0.mar")
    build(
        store,
        "cfg",
        yaml_text="minWorkers: 1\nmaxWorkers: 1\nbatchSize: 2\nmaxBatchDelay: 50\n"
        "responseTimeout: 30\nhandler:\n  custom_key: custom_value\n",
    )
    build(store, "gpu3", yaml_text="minWorkers: 3\nmaxWorkers: 3\n")
    build(store, "gpucpu", yaml_text="minWorkers: 1\nmaxWorkers: 1\ndeviceType: cpu\n")
    build(store, "gpuids", yaml_text="minWorkers: 2\nmaxWorkers: 2\ndeviceIds: [1]\n")
    return store


@pytest.fixture(scope="session")
def backend(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """Token auth off, model API on, a small max_request_size, one start-up model "startup"."""
    b = start_backend(
        tmp_path_factory.mktemp("plain"),
        store,
        {"max_request_size": str(MAX_REQUEST_SIZE), "default_workers_per_model": "1"},
        ["--disable-token-auth", "--enable-model-api", "--models", "startup=probe.mar"],
    )
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(scope="session")
def auth_backend(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """TorchServe's defaults (token auth on, model API off), job_queue_size=2, and two pretend GPUs.

    Start-up models, in load order: gpu3 (3 workers), gpucpu (deviceType cpu), gpuids
    (deviceIds [1], 2 workers), slow (the probe, 1 worker).
    """
    b = start_backend(
        tmp_path_factory.mktemp("auth"),
        store,
        {"job_queue_size": "2", "default_workers_per_model": "1"},
        ["--models", "gpu3=gpu3.mar", "gpucpu=gpucpu.mar", "gpuids=gpuids.mar", "slow=probe.mar"],
        env_extra={"TS_NOTEBOOK_GPU_COUNT": "2"},
    )
    try:
        yield b
    finally:
        b.stop()


class Models:
    """Registers models on the plain backend and unregisters every version of them afterwards."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.names: list[str] = []

    def register(self, url: str, name: str, expect: int | None = 200, **params: Any) -> Reply:
        if name not in self.names:
            self.names.append(name)
        reply = self.backend.register(url, model_name=name, **params)
        if expect is not None:
            assert reply.status == expect, (reply.status, reply.body)
        return reply

    def cleanup(self) -> None:
        for name in self.names:
            for _ in range(10):
                if self.backend.mgmt("DELETE", f"/models/{name}").status != 200:
                    break


@pytest.fixture
def models(backend: Backend) -> Iterator[Models]:
    m = Models(backend)
    try:
        yield m
    finally:
        m.cleanup()
