"""The JSON codec of the records in ``records``: one place, schema checked, bytes as ``rows`` writes them.

``to_json`` / ``from_json`` turn a record into JSON-ready values and back; the backend's
``/ts_notebook/`` endpoints answer with them and ``Client`` decodes them, so both ends read the same
types. Every field's type is checked when read: a backend of another version (another ``SCHEMA``) or a
damaged answer raises ``RecordError`` naming the field, never a ``KeyError`` in a view. Stdlib only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import cast

from ts_notebook import rows
from ts_notebook.jsontypes import JsonObject
from ts_notebook.records import (
    SCHEMA,
    E,
    Event,
    EventPage,
    Failure,
    LogLine,
    ModelTimings,
    RecordError,
    ServedRequest,
    Shown,
    StageTiming,
    Swap,
    VersionWorkers,
    WorkerChange,
    WorkerContext,
    WorkerView,
)


class _Fields:
    """A JSON object read as a record: each getter checks its type and names the field when it is wrong."""

    def __init__(self, data: object, what: str, *, schema: bool = True) -> None:
        if not isinstance(data, dict):
            raise RecordError(f"{what}: expected a JSON object, got {type(data).__name__}")
        self.data: JsonObject = data
        self.what = what
        found = data.get("schema")
        if schema and found != SCHEMA:
            raise RecordError(
                f"{what}: schema {found!r}, but this ts_notebook reads schema {SCHEMA}: the backend runs another "
                "version of ts_notebook; stop it (%ts_serve stop) and start it again"
            )

    def _get(self, key: str, kinds: tuple[type, ...], optional: bool) -> object:
        value = self.data.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise RecordError(f"{self.what}: field {key!r} should be {kinds[0].__name__}, got {value!r:.80}")
        return value

    def text(self, key: str) -> str:
        return cast(str, self._get(key, (str,), False))

    def opt_text(self, key: str) -> str | None:
        return cast("str | None", self._get(key, (str,), True))

    def whole(self, key: str) -> int:
        return cast(int, self._get(key, (int,), False))

    def opt_whole(self, key: str) -> int | None:
        return cast("int | None", self._get(key, (int,), True))

    def number(self, key: str) -> float:
        return float(cast(float, self._get(key, (float, int), False)))

    def opt_number(self, key: str) -> float | None:
        value = self._get(key, (float, int), True)
        return None if value is None else float(cast(float, value))

    def flag(self, key: str) -> bool:
        return cast(bool, self._get(key, (bool,), False))

    def obj(self, key: str) -> JsonObject:
        value = self._get(key, (dict,), True)
        return cast(JsonObject, value) if value is not None else {}

    def items(self, key: str) -> list[object]:
        value = self._get(key, (list,), True)
        return cast("list[object]", value) if value is not None else []


def _failure_json(f: Failure | None) -> JsonObject | None:
    return None if f is None else {"code": f.code, "message": f.message, "traceback": f.traceback, "where": f.where}


def _failure(data: object, what: str) -> Failure | None:
    if data is None:
        return None
    f = _Fields(data, f"{what}.error", schema=False)
    return Failure(f.whole("code"), f.text("message"), f.opt_text("traceback") or "", f.opt_text("where"))


def _context_json(c: WorkerContext | None) -> JsonObject | None:
    if c is None:
        return None
    return {
        "model_dir": c.model_dir,
        "system_properties": c.properties(),
        "manifest": dict(c.manifest),
        "model_yaml_config": dict(c.model_yaml_config),
    }


def _context(data: object, what: str) -> WorkerContext | None:
    if data is None:
        return None
    f = _Fields(data, f"{what}.context", schema=False)
    return WorkerContext(f.text("model_dir"), f.obj("system_properties"), f.obj("manifest"), f.obj("model_yaml_config"))


def _request_json(r: ServedRequest, full: bool) -> JsonObject:
    out: JsonObject = {
        "request_id": r.request_id,
        "model": r.model,
        "version": r.version,
        "time": r.time,
        "method": r.method,
        "path": r.path,
        "status": r.status,
        "latency_s": r.latency_s,
        "queue_s": r.queue_s,
        "transport_s": r.transport_s,
        "stages_s": dict(r.stages_s),
        "stages_ms": r.stages_ms,  # for a person reading the JSON; the decoder uses the seconds
        "worker": r.worker,
        "gen_id": r.gen_id,
        "batch_id": r.batch_id,
        "batch_size": r.batch_size,
        "error": _failure_json(r.error),
        "truncated": r.truncated,
    }
    if full:
        out["context"] = _context_json(r.context)
        out["row"] = rows.encode(dict(r.row or {}))
        out["headers"] = rows.encode(dict(r.headers or {}))
        out["body"] = rows.encode(r.body or b"")
        out["batch"] = list(r.batch)
    else:
        shown = r.shown()
        out["shown"] = {"data": shown.data, "headers": shown.headers, "response": shown.response}
    return out


def _request(f: _Fields) -> ServedRequest:
    what = f.what
    stages = {str(k): float(cast(float, v)) for k, v in f.obj("stages_s").items() if isinstance(v, int | float)}
    shown = None
    if "shown" in f.data:
        s = _Fields(f.data["shown"], f"{what}.shown", schema=False)
        shown = Shown(s.text("data"), s.text("headers"), s.text("response"))
    full = "row" in f.data
    body = rows.decode(f.data.get("body")) if full else None
    return ServedRequest(
        f.text("request_id"), f.text("model"), f.text("version"), f.number("time"), f.text("method"), f.text("path"),
        f.whole("status"), f.number("latency_s"), f.number("queue_s"), f.number("transport_s"), stages,
        f.opt_text("worker"), f.opt_text("gen_id"), f.opt_whole("batch_id"), f.whole("batch_size"),
        _failure(f.data.get("error"), what), _context(f.data.get("context"), what),
        cast(JsonObject, rows.decode(f.obj("row"))) if full else None,
        cast(JsonObject, rows.decode(f.obj("headers"))) if full else None,
        bytes(body) if isinstance(body, bytes | bytearray) else None,
        f.flag("truncated"), tuple(str(b) for b in f.items("batch")), shown,
    )  # fmt: skip


def _plain_json(record: LogLine | WorkerChange | Swap) -> JsonObject:
    return {f.name: getattr(record, f.name) for f in fields(record)}


def _log(f: _Fields) -> LogLine:
    return LogLine(
        f.number("time"), f.text("level"), f.text("message"), f.opt_text("source") or "", f.opt_text("model"),
        f.opt_text("version"), f.opt_text("worker"), f.opt_whole("pid"), f.opt_text("request_id"),
    )  # fmt: skip


def _worker(f: _Fields) -> WorkerChange:
    return WorkerChange(
        f.number("time"), f.text("model"), f.text("version"), f.text("status"), f.opt_text("worker"),
        f.opt_whole("pid"), f.opt_text("generation"), f.opt_whole("gpu_id"), f.opt_number("load_ms"),
        f.opt_whole("exit_code"), f.opt_whole("response_timeout"), f.opt_text("error"),
    )  # fmt: skip


def _swap(f: _Fields) -> Swap:
    return Swap(
        f.number("time"), f.text("model"), f.text("version"), f.text("gen_id"), f.text("previous"), f.text("mode"),
        f.whole("workers"), f.number("seconds"), f.opt_text("note") or "",
    )  # fmt: skip


_DECODERS: dict[str, Callable[[_Fields], Event]] = {"request": _request, "log": _log, "worker": _worker, "swap": _swap}


def to_json(record: Event, *, full: bool = False) -> JsonObject:
    """A record as JSON-ready values, tagged with its ``kind`` and the schema. A ``ServedRequest`` is
    its summary (previews, no row) unless ``full``, which carries row, headers, body and Context."""
    body = _request_json(record, full) if isinstance(record, ServedRequest) else _plain_json(record)
    if isinstance(record, Swap):  # what a reload answers: the sentence, and the generation by its old name
        body["status"], body["generation"] = record.status, record.gen_id
    return {"schema": SCHEMA, "kind": record.KIND, **body}


def from_json(data: object) -> Event:
    """The record ``to_json`` wrote.

    Raises:
        RecordError: not a record of this schema, of a kind this version knows, with fields of their types.
    """
    f = _Fields(data, "record")
    kind = f.data.get("kind")
    decoder = _DECODERS.get(kind) if isinstance(kind, str) else None
    if decoder is None:
        raise RecordError(f"record: unknown kind {kind!r} (this version knows {', '.join(_DECODERS)})")
    f.what = f"{kind} record"
    return decoder(f)


def decode_as(data: object, kind: type[E]) -> E:
    """``from_json``, when the caller knows which kind the answer holds."""
    record = from_json(data)
    if not isinstance(record, kind):
        raise RecordError(f"expected a {kind.KIND} record, got a {record.KIND} record")
    return record


def page_to_json(numbered: list[tuple[int, Event]], next_seq: int, latest: int) -> JsonObject:
    return {
        "schema": SCHEMA,
        "next": next_seq,
        "latest": latest,
        "events": [{"seq": seq, **to_json(record)} for seq, record in numbered],
    }


def page_from_json(data: object) -> EventPage:
    f = _Fields(data, "event page")
    return EventPage(f.whole("next"), f.whole("latest"), tuple(from_json(e) for e in f.items("events")))


def timings_to_json(timings: list[ModelTimings]) -> JsonObject:
    models = {
        t.model: {"requests": t.requests, "stages": {s.stage: {"p50": s.p50, "p99": s.p99, "n": s.n} for s in t.stages}}
        for t in timings
    }
    return {"schema": SCHEMA, "models": models}


def timings_from_json(data: object) -> list[ModelTimings]:
    out = []
    for model, entry in _Fields(data, "timings").obj("models").items():
        f = _Fields(entry, f"timings of {model}", schema=False)
        stages = []
        for stage, t in f.obj("stages").items():
            s = _Fields(t, f"timings of {model}.{stage}", schema=False)
            stages.append(StageTiming(stage, s.number("p50"), s.number("p99"), s.whole("n")))
        out.append(ModelTimings(model, f.whole("requests"), tuple(stages)))
    return out


def _view_json(w: WorkerView) -> JsonObject:
    out = {f.name: getattr(w, f.name) for f in fields(w)}
    out["system_properties"], out["manifest"] = dict(w.system_properties), dict(w.manifest)
    return out


def workers_to_json(versions: list[VersionWorkers]) -> list[JsonObject]:
    """Keyed as TorchServe's describe answer keys a version (modelName, modelVersion), one schema each."""
    return [
        {
            "schema": SCHEMA,
            "modelName": v.model,
            "modelVersion": v.version,
            "generation": v.generation,
            "workers": [_view_json(w) for w in v.workers],
            "loadFailure": v.load_failure,
        }
        for v in versions
    ]


def _view(data: object, what: str) -> WorkerView:
    f = _Fields(data, what, schema=False)
    return WorkerView(
        f.text("id"), f.whole("pid"), f.text("status"), f.text("generation"), f.opt_whole("gpu_id"),
        f.opt_whole("threads") or 1, f.opt_whole("holding") or 0, f.obj("system_properties"), f.obj("manifest"),
    )  # fmt: skip


def workers_from_json(data: object) -> list[VersionWorkers]:
    if not isinstance(data, list):
        raise RecordError(f"workers: expected a JSON list, got {type(data).__name__}")
    out = []
    for item in data:
        f = _Fields(item, "workers of a model version")
        what = f"workers of {f.text('modelName')} {f.text('modelVersion')}"
        views = tuple(_view(w, f"{what}: a worker") for w in f.items("workers"))
        out.append(VersionWorkers(f.text("modelName"), f.text("modelVersion"), f.text("generation"), views,
                                  f.opt_text("loadFailure")))  # fmt: skip
    return out


def requests_from_json(data: object) -> list[ServedRequest]:
    """A list of served requests (summaries), as ``/ts_notebook/requests`` answers."""
    if not isinstance(data, list):
        raise RecordError(f"served requests: expected a JSON list, got {type(data).__name__}")
    return [decode_as(item, ServedRequest) for item in data]
