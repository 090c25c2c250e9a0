"""The typed records that cross the backend <-> notebook boundary, and their one JSON codec.

The backend builds one ``ServedRequest`` where a request's answer arrives; the replay ring, the event
stream and the timings hold that same object. Its ``row`` and ``headers`` are the very objects the
handler got (bytes kept) and ``body`` the answer's bytes: nothing is copied or decoded on the request
path. What a person reads of them (the row's ``repr``, the answer as text) is made when read, by
``shown()``, which the event stream's summaries carry so a poller gets text and not megabytes.

Every record says ``schema`` on the wire, like ``backend.json`` (``BackendInfo``): a client of another
version gets a ``RecordError`` naming both versions instead of a ``KeyError`` in a widget. Bytes travel
as ``rows.encode`` writes them, so a replayed row is the served one. Stdlib only.
"""

from __future__ import annotations

import builtins
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import ClassVar, TypeVar, Union

from ts_notebook.errors import BackendError

SCHEMA = 1
PREVIEW = 2000  # characters of a row's repr or an answer's text that a view shows
HEADERS_PREVIEW = 500
STAGE_ORDER = ("queue", "transport", "preprocess", "inference", "postprocess", "handle", "latency")


class RecordError(BackendError):
    """A ``/ts_notebook/`` answer that is not a record of this version's schema."""


class _Head(reprlib.Repr):
    """``repr`` of only as much of a value as its first ``limit`` characters can show.

    A long bytes or str value is cut to ``limit`` before its repr, and a container to the items that
    can show (each takes 3 characters at least, ", " included), so a 100 MB upload costs a preview no
    more than a small one, and the preview's text is the first ``limit`` characters of the full repr.
    """

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.maxlevel = limit
        items = limit // 3 + 2
        self.maxtuple = self.maxlist = self.maxarray = self.maxdict = items
        self.maxset = self.maxfrozenset = self.maxdeque = items
        self.maxlong = self.maxstring = self.maxother = 1 << 62  # never cut in the middle

    def _head(self, x: str | bytes | bytearray) -> str:
        if len(x) <= self.limit:
            return builtins.repr(x)
        head = x[: self.limit]
        if _double_quoted(x) != _double_quoted(head):  # repr picks its quotes from the whole value: rare
            return builtins.repr(x)[: self.limit + 16]
        return builtins.repr(head)

    def repr_str(self, x: str, level: int) -> str:
        return self._head(x)

    def repr_bytes(self, x: bytes, level: int) -> str:
        return self._head(x)

    def repr_bytearray(self, x: bytearray, level: int) -> str:
        return self._head(x)

    def repr_dict(self, x: dict[object, object], level: int) -> str:
        """In the dict's own order (reprlib sorts keys; a row's order is what the handler saw)."""
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        pieces = [f"{self.repr1(k, level - 1)}: {self.repr1(v, level - 1)}" for k, v in islice(x.items(), self.maxdict)]
        return "{" + ", ".join(pieces + (["..."] if len(x) > self.maxdict else [])) + "}"


def _double_quoted(x: str | bytes | bytearray) -> bool:
    """Whether ``repr(x)`` quotes with " (it holds a ' and no ")."""
    if isinstance(x, str):
        return "'" in x and '"' not in x
    return b"'" in x and b'"' not in x


_HEADS: dict[int, _Head] = {}


def preview(value: object, limit: int = PREVIEW) -> str:
    """The first ``limit`` characters of ``repr(value)`` (the cut marked), without the repr of the rest."""
    head = _HEADS.get(limit) or _HEADS.setdefault(limit, _Head(limit))
    text = head.repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def body_preview(body: bytes, limit: int = PREVIEW) -> str:
    """An answer as a person reads it: text when it is UTF-8, else the bytes' repr."""
    try:
        text = body[:limit].decode("utf-8")
    except UnicodeDecodeError:
        return preview(body[:limit], limit)
    return text if len(body) <= limit else text + "…"


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a request failed: the status and message its client got, and what only the notebook sees."""

    code: int
    message: str
    traceback: str = ""
    where: str | None = None  # the handler line that raised, "file.py:12"


@dataclass(frozen=True, slots=True)
class WorkerContext:
    """The Context the serving worker's handler had: its model_dir, system_properties and manifest."""

    model_dir: str
    system_properties: Mapping[str, object]  # as the worker loaded; ``properties()`` puts model_dir in
    manifest: Mapping[str, object]
    model_yaml_config: Mapping[str, object] = field(default_factory=dict)

    def properties(self) -> dict[str, object]:
        """system_properties as the handler sees them now (an in-place swap moves model_dir)."""
        return {**self.system_properties, "model_dir": self.model_dir}


@dataclass(frozen=True, slots=True)
class Shown:
    """A served request as a person reads it: its row's and headers' repr, its answer as text."""

    data: str
    headers: str
    response: str


@dataclass(frozen=True, slots=True)
class ServedRequest:
    """One served request: who served it, how it went, where its time went, and what to replay it with.

    Built once by the backend; a client gets either the summary (``row``, ``headers``, ``body`` and
    ``context`` None, ``shown`` set: the event stream and the request list) or the whole record.
    """

    KIND: ClassVar[str] = "request"

    request_id: str
    model: str
    version: str
    time: float
    method: str
    path: str
    status: int
    latency_s: float
    queue_s: float
    transport_s: float = 0.0
    stages_s: Mapping[str, float] = field(default_factory=dict)  # the handler's stages, for the batch
    worker: str | None = None
    gen_id: str | None = None
    batch_id: int | None = None
    batch_size: int = 0
    error: Failure | None = None
    context: WorkerContext | None = None
    row: Mapping[str, object] | None = None  # exactly as the handler got it, cut past the ring's cap
    headers: Mapping[str, object] | None = None
    body: bytes | None = None  # the answer sent
    truncated: bool = False  # a row value was longer than the ring keeps (ts_notebook_replay_body_bytes)
    batch: tuple[str, ...] = ()  # the ids of its batch the ring still keeps (filled when read from it)
    previews: Shown | None = None  # what a summary carries instead of row, headers and body

    @property
    def failed(self) -> bool:
        return self.status >= 400

    @property
    def latency_ms(self) -> float:
        return round(self.latency_s * 1000, 3)

    @property
    def queue_ms(self) -> float:
        return round(self.queue_s * 1000, 3)

    @property
    def stages_ms(self) -> dict[str, float]:
        """Where the time went in ms: queue, the trip to the worker and back, each stage, the whole."""
        out = {"queue": self.queue_ms, "transport": round(self.transport_s * 1000, 3)}
        out.update({stage: round(seconds * 1000, 3) for stage, seconds in self.stages_s.items()})
        out["latency"] = self.latency_ms
        return out

    def shown(self) -> Shown:
        """The previews: made from the row, headers and body here, or as a summary carried them."""
        if self.previews is not None:
            return self.previews
        return Shown(
            preview(dict(self.row or {})),
            preview(dict(self.headers or {}), HEADERS_PREVIEW),
            body_preview(self.body or b""),
        )


@dataclass(frozen=True, slots=True)
class LogLine:
    """A handler's log record or output line (or the backend's own), with its model, worker and request."""

    KIND: ClassVar[str] = "log"

    time: float
    level: str
    message: str
    source: str = ""
    model: str | None = None
    version: str | None = None
    worker: str | None = None
    pid: int | None = None
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class WorkerChange:
    """A worker's life event: READY (with its GPU and load time), DIED (exit code), TIMEOUT, FAILED."""

    KIND: ClassVar[str] = "worker"

    time: float
    model: str
    version: str
    status: str
    worker: str | None = None
    pid: int | None = None
    generation: str | None = None
    gpu_id: int | None = None
    load_ms: float | None = None
    exit_code: int | None = None
    response_timeout: int | None = None
    error: str | None = None

    def detail(self) -> str:
        """``status=READY pid=12 gpu_id=0``: the fields that say something, as the log views show them."""
        pairs = (
            ("status", self.status),
            ("pid", self.pid),
            ("gpu_id", self.gpu_id),
            ("exit_code", self.exit_code),
            ("error", self.error),
        )
        return " ".join(f"{k}={v}" for k, v in pairs if v is not None)


@dataclass(frozen=True, slots=True)
class Swap:
    """A model version moved to another generation of its code (a reload)."""

    KIND: ClassVar[str] = "swap"

    time: float
    model: str
    version: str
    gen_id: str
    previous: str
    mode: str  # "unchanged", "no-workers", "in-place" or "blue-green"
    workers: int
    seconds: float
    note: str = ""

    @property
    def status(self) -> str:
        """The sentence a reload answers with."""
        how = {
            "unchanged": "already served it",
            "no-workers": "has no workers: new ones will run it",
            "in-place": "swapped the code in place, keeping the loaded model",
            "blue-green": "started new workers, then moved traffic",
        }.get(self.mode, self.mode)
        return (
            f'Model "{self.model}" version {self.version} now serves generation {self.gen_id}: {how} '
            f"({self.workers} workers, {self.seconds:.3f} s)"
        )


Event = Union[ServedRequest, LogLine, WorkerChange, Swap]  # noqa: UP007 (a runtime alias, for isinstance users)
E = TypeVar("E", ServedRequest, LogLine, WorkerChange, Swap)


@dataclass(frozen=True, slots=True)
class EventPage:
    """The events after a sequence number; ``next`` is the number to ask after next time."""

    next: int
    latest: int
    events: tuple[Event, ...] = ()

    def of(self, kind: type[E]) -> list[E]:
        """The events of one type, oldest first."""
        return [e for e in self.events if isinstance(e, kind)]


@dataclass(frozen=True, slots=True)
class StageTiming:
    stage: str
    p50: float  # ms
    p99: float  # ms
    n: int


@dataclass(frozen=True, slots=True)
class ModelTimings:
    """p50 and p99 in ms of each stage over a model's kept requests, in STAGE_ORDER."""

    model: str
    requests: int
    stages: tuple[StageTiming, ...] = ()


@dataclass(frozen=True, slots=True)
class WorkerView:
    """What one worker really received (system_properties, manifest) and which code it runs."""

    id: str
    pid: int
    status: str
    generation: str
    gpu_id: int | None = None
    threads: int = 1
    holding: int = 0  # jobs of the batch it is forming
    system_properties: Mapping[str, object] = field(default_factory=dict)
    manifest: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VersionWorkers:
    """A model version's workers, the generation it serves, and why its workers did not load, if so."""

    model: str
    version: str
    generation: str
    workers: tuple[WorkerView, ...] = ()
    load_failure: str | None = None


KINDS: dict[str, type[Event]] = {c.KIND: c for c in (ServedRequest, LogLine, WorkerChange, Swap)}
