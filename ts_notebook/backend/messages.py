"""The wire protocol between the backend, its zygote and its workers: one typed message per op.

Both ends run this same module (workers are forked from the zygote, which the backend started),
so messages travel as pickled dataclasses in ``protocol``'s length-prefixed frames. Nothing here
imports torch or aiohttp.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from ts_notebook.handler.metrics_api import MetricRecord
from ts_notebook.jsontypes import JsonObject
from ts_notebook.records import WorkerContext


class WorkerStatus(enum.Enum):
    """A worker's life: STARTING -> READY <-> BUSY -> DRAINING -> STOPPING -> DEAD (or KILLED on timeout)."""

    STARTING = "STARTING"
    READY = "READY"
    BUSY = "BUSY"
    DRAINING = "DRAINING"  # finishing its batch, then it stops; takes no new work
    STOPPING = "STOPPING"
    KILLED = "KILLED"  # ran past responseTimeout: never serves again
    DEAD = "DEAD"

    @property
    def live(self) -> bool:
        """Serving or able to serve (what TorchServe counts as a worker of the model)."""
        return self in (WorkerStatus.READY, WorkerStatus.BUSY)


@dataclass(frozen=True)
class Generation:
    """Which handler code and archive a model version's workers run.

    ``gen_id`` is a short hash of the content (the archive's, for a registered or reloaded archive;
    every file of ``model_dir``, for one made with a cell's handler), so two workers with the same id
    run the same thing.
    """

    gen_id: str
    model_dir: str
    manifest: JsonObject  # MANIFEST.json as the archive has it
    handler: str
    model_yaml_config: JsonObject = field(default_factory=dict)  # model-config.yaml as written


# -- zygote <-> backend ------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerSpec:
    """Everything a forked worker needs to load its model."""

    worker_id: str
    model_name: str
    generation: Generation
    batch_size: int
    gpu_id: int | None
    threads: int
    time_stages: bool = True
    metrics_config: str | None = None  # the metrics.yaml whose model metrics context.metrics declares
    envelope: str | None = None  # service_envelope (body, json, kserve, kservev2)


@dataclass(frozen=True)
class ZygoteReady:
    pid: int
    gpus: int


@dataclass(frozen=True)
class Spawn:
    sock_path: str
    spec: WorkerSpec


@dataclass(frozen=True)
class Spawned:
    worker_id: str
    pid: int


@dataclass(frozen=True)
class Exited:
    pid: int
    code: int


@dataclass(frozen=True)
class Stop:
    """Stop after the current batch (worker) or now (zygote)."""


# -- backend -> worker -------------------------------------------------------------------------
@dataclass(frozen=True)
class WireRequest:
    """One request of a batch, as TorchServe's frontend hands it to a worker."""

    request_id: str
    row: JsonObject  # the handler's data row and headers: its input, shaped as TorchServe shapes it
    headers: JsonObject


@dataclass(frozen=True)
class Predict:
    batch_id: int
    requests: list[WireRequest]


@dataclass(frozen=True)
class SetThreads:
    n: int


@dataclass(frozen=True)
class SwapCode:
    """Run ``generation`` in this process, keeping the loaded state, if only the handler file changed
    and its ``initialize`` is the same code; otherwise answer ``Swapped(ok=False, reason=...)``."""

    generation: Generation


# -- worker -> backend -------------------------------------------------------------------------
@dataclass(frozen=True)
class Hello:
    worker_id: str
    pid: int


@dataclass(frozen=True)
class LoadFailure:
    """Why a handler did not load: the exception, the handler line, the traceback."""

    error: str
    where: str | None = None
    traceback: str = ""


@dataclass(frozen=True)
class Loaded:
    system_properties: JsonObject = field(default_factory=dict)  # what the handler's Context was given
    manifest: JsonObject = field(default_factory=dict)
    failure: LoadFailure | None = None


@dataclass(frozen=True)
class Swapped:
    gen_id: str
    ok: bool
    reason: str = ""
    failure: LoadFailure | None = None


@dataclass(frozen=True)
class Response:
    """One request's successful answer, encoded as TorchServe encodes handler output."""

    status: int
    phrase: str
    headers: dict[str, str]
    body: bytes
    content_type: str


@dataclass(frozen=True)
class ErrorInfo:
    """A failed batch: the status and message clients get, and what only the notebook sees."""

    code: int
    message: str
    traceback: str = ""
    where: str | None = None


@dataclass(frozen=True)
class Result:
    batch_id: int
    responses: list[Response] | None = None
    error: ErrorInfo | None = None
    metrics: list[MetricRecord] = field(default_factory=list)  # what the handler reported, in order
    stages: dict[str, float] = field(default_factory=dict)  # stage -> seconds, for the whole batch
    handle_seconds: float = 0.0


@dataclass(frozen=True)
class Intermediate:
    request_id: str
    body: bytes
    content_type: str


@dataclass(frozen=True)
class Log:
    level: str
    message: str
    source: str
    request_id: str | None = None


# -- the dispatcher's answer to one request ----------------------------------------------------
@dataclass
class Answer:
    """What one submitted request got: a response or an error, and where its time went."""

    response: Response | None = None
    error: ErrorInfo | None = None
    worker: str | None = None
    gen_id: str | None = None
    batch_id: int | None = None
    batch_size: int = 0
    queue_seconds: float = 0.0
    transport_seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)
    context: WorkerContext | None = None  # the Context its worker's handler had

    @classmethod
    def failed(cls, code: int, message: str, **kw: Any) -> Answer:
        return cls(error=ErrorInfo(code, message), **kw)
