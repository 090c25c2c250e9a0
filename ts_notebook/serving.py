"""What the notebook shows of a running backend: a status snapshot and its log lines."""

from __future__ import annotations

import datetime
import html
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from ts_notebook.backend.info import BackendInfo
from ts_notebook.client import Client, describe_all
from ts_notebook.jsontypes import JsonObject
from ts_notebook.records import LogLine, ModelTimings, ServedRequest, VersionWorkers, WorkerChange

_STATUS_KEYS = ("modelName", "modelVersion", "batchSize", "maxBatchDelay", "responseTimeout", "workers")


@dataclass(frozen=True)
class ServeStatus:
    """The value of ``%ts_serve status`` (and ``start``): addresses, pid, models, workers, and how to
    reach the server from outside the notebook (key file and ready-to-paste ``curl`` lines)."""

    inference_address: str
    management_address: str
    metrics_address: str
    pid: int
    models: list[JsonObject] = field(default_factory=list)
    note: str = ""
    key_file: str | None = None
    inference_key: str | None = None
    management_key: str | None = None
    failed_models: dict[str, str] = field(default_factory=dict)
    generations: dict[str, str] = field(default_factory=dict)  # worker id -> the generation it runs (ours only)

    @classmethod
    def of(cls, info: BackendInfo, note: str = "") -> ServeStatus:
        client = info.client()
        _, described = describe_all(client)
        keys = info.keys()
        models = [{k: version[k] for k in _STATUS_KEYS} for version in described]
        return cls(
            info.inference_address,
            info.management_address,
            info.metrics_address,
            info.pid,
            models,
            note,
            str(info.key_file) if info.key_file else None,
            keys["inference"],
            keys["management"],
            dict(info.failed_models),
            worker_generations(client),
        )

    def curl_lines(self) -> list[str]:
        """Shell commands that reach this server from a terminal, tokens included."""
        model = self.models[0]["modelName"] if self.models else "MODEL"
        auth_i = f" -H 'Authorization: Bearer {self.inference_key}'" if self.inference_key else ""
        auth_m = f" -H 'Authorization: Bearer {self.management_key}'" if self.management_key else ""
        return [
            f"curl{auth_i} {self.inference_address}/predictions/{model} --data-binary @request.json",
            f"curl{auth_m} {self.management_address}/models",
        ]

    def access_lines(self) -> list[str]:
        if self.key_file:
            head = f"tokens: {self.key_file} (inference key {self.inference_key}, management key {self.management_key})"
        else:
            head = "token authorization is off: requests need no key"
        return [head, "from a terminal:", *(f"  {line}" for line in self.curl_lines())]

    def to_text(self) -> str:
        lines = [self.note] if self.note else []
        lines += [
            f"backend pid {self.pid}: inference {self.inference_address}  management {self.management_address}"
            f"  metrics {self.metrics_address}"
        ]
        lines += [f"FAILED to load {spec}: {why}" for spec, why in self.failed_models.items()]
        if not self.models:
            lines.append("no models registered (use %ts_serve register PATH)")
        for m in self.models:
            workers = (
                ", ".join(
                    f"{w['id']}:{w['status']}(pid {w['pid']}, gen {self.generations.get(str(w['id']), '')})"
                    for w in m["workers"]
                )
                or "no workers"
            )
            lines.append(
                f"  {m['modelName']} {m['modelVersion']}  batch {m['batchSize']}/{m['maxBatchDelay']} ms"
                f"  timeout {m['responseTimeout']} s  workers: {workers}"
            )
        return "\n".join(lines + self.access_lines())

    def __repr__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(m['modelName'])}</td><td>{html.escape(m['modelVersion'])}</td>"
            f"<td>{len(m['workers'])}</td><td>{m['batchSize']}</td><td>{m['maxBatchDelay']}</td>"
            f"<td>{m['responseTimeout']}</td></tr>"
            for m in self.models
        )
        note = f"<p>{html.escape(self.note)}</p>" if self.note else ""
        failed = "".join(
            f"<p style='color:#cf222e'><b>failed to load</b> <code>{html.escape(spec)}</code>: {html.escape(why)}</p>"
            for spec, why in self.failed_models.items()
        )
        access = "<br>".join(html.escape(line) for line in self.access_lines())
        return (
            f"<div class='tsn-status'>{note}{failed}<p>backend pid {self.pid}: inference "
            f"<code>{html.escape(self.inference_address)}</code>, management "
            f"<code>{html.escape(self.management_address)}</code></p><table><thead><tr><th>model</th>"
            f"<th>version</th><th>workers</th><th>batch</th><th>delay ms</th><th>timeout s</th></tr></thead>"
            f"<tbody>{rows}</tbody></table><pre class='tsn-access'>{access}</pre></div>"
        )


def notebook_views(client: Client) -> list[VersionWorkers]:
    """Our backend's per-version views (workers, generation, load failure); [] for TorchServe."""
    from ts_notebook.errors import BackendError

    try:
        return client.workers()
    except BackendError:
        return []


def worker_generations(client: Client, views: list[VersionWorkers] | None = None) -> dict[str, str]:
    """Worker id -> the generation (short hash of handler code and archive) it runs; {} for TorchServe."""
    views = notebook_views(client) if views is None else views
    return {w.id: w.generation for v in views for w in v.workers}


@dataclass(frozen=True)
class RequestList:
    """The value of ``%ts_serve requests``: recent served requests with the ids to replay."""

    requests: list[ServedRequest]

    def to_text(self) -> str:
        if not self.requests:
            return "no served requests kept yet"
        lines = []
        for r in self.requests:
            stamp = time.strftime("%H:%M:%S", time.localtime(r.time))
            error = f"  {r.error.message}" if r.error and r.error.message else ""
            lines.append(
                f"{stamp} {r.request_id}  {r.model} {r.status}  {r.latency_ms:.1f} ms  batch {r.batch_size}"
                f"  worker {r.worker} gen {r.gen_id}{error}"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.to_text()

    @property
    def ids(self) -> list[str]:
        return [r.request_id for r in self.requests]


@dataclass(frozen=True)
class TimingsView:
    """The value of ``%ts_serve timings``: per model, p50/p99 ms of each stage of recent requests."""

    timings: list[ModelTimings]

    def to_text(self) -> str:
        lines = []
        for entry in self.timings:
            lines.append(f"{entry.model}: {entry.requests} recent requests")
            for t in entry.stages:
                lines.append(f"  {t.stage:<12} p50 {t.p50:9.3f} ms   p99 {t.p99:9.3f} ms")
        return "\n".join(lines) or "no served requests kept yet"

    def __repr__(self) -> str:
        return self.to_text()


@dataclass(frozen=True)
class MetricsText:
    """The value of ``%ts_serve metrics [NAME]``: Prometheus text, only the samples of ``model`` if given."""

    text: str
    model: str | None = None

    @classmethod
    def of(cls, client: Client, model: str | None = None) -> MetricsText:
        return cls(filter_metrics(client.metrics(), model), model)

    def __repr__(self) -> str:
        return self.text or f"no metric samples{f' for model {self.model}' if self.model else ''} yet"


def filter_metrics(text: str, model: str | None) -> str:
    """Keep the samples of ``model`` (and their HELP/TYPE lines); all when None.

    TorchServe labels its request counters ``model_name`` and handler metrics ``ModelName``.
    """
    if model is None:
        return text
    labels = (f'model_name="{model}"', f'ModelName="{model}"')
    out: list[str] = []
    header: list[str] = []
    for line in text.splitlines():
        if line.startswith("#"):
            if line.startswith("# HELP"):
                header = []
            header.append(line)
        elif any(label in line for label in labels):
            out.extend(header)
            header = []
            out.append(line)
    return "\n".join(out) + ("\n" if out else "")


# TorchServe's model_log.log: "2026-12-02T02:51:15,006 [INFO ] W-9000-tiny_1.0-stdout MODEL_LOG - text"
_MODEL_LOG = re.compile(r"^(\S+) \[(\w+)\s*\] W-(\d+)-(.+)_([^_\s]+)-(?:stdout|stderr) MODEL_LOG - (.*)$")


def _model_log_line(line: str) -> LogLine | None:
    match = _MODEL_LOG.match(line)
    if match is None:
        return None
    stamp, level, worker, model, _version, message = match.groups()
    try:
        when = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S,%f").timestamp()
    except ValueError:
        when = time.time()
    return LogLine(when, level, message, "stdout", model, worker=worker)


@dataclass(frozen=True)
class LogView:
    """The value of ``%ts_serve logs``: handler output and worker events, oldest first."""

    lines: list[LogLine | WorkerChange]

    @classmethod
    def of(cls, client: Client, model: str | None, tail: int) -> LogView:
        events = client.events(0, model=model, limit=10_000).events
        return cls([e for e in events if isinstance(e, LogLine | WorkerChange)][-tail:])

    @classmethod
    def of_files(cls, log_dir: Path, model: str | None, tail: int) -> LogView:
        """Real TorchServe's handler output, from its model_log.log (it has no event stream)."""
        try:
            text = (log_dir / "model_log.log").read_text(errors="replace")
        except OSError:
            return cls([])
        lines: list[LogLine | WorkerChange] = [
            e for e in map(_model_log_line, text.splitlines()) if e and (model is None or e.model == model)
        ]
        return cls(lines[-tail:])

    def to_text(self) -> str:
        out = []
        for e in self.lines:
            stamp = time.strftime("%H:%M:%S", time.localtime(e.time))
            if isinstance(e, WorkerChange):
                out.append(f"{stamp} {e.model} worker {e.worker or '-'}: {e.detail()}")
                continue
            rid = f" [{e.request_id}]" if e.request_id else ""
            for i, line in enumerate(e.message.splitlines() or [""]):
                prefix = f"{stamp} {e.model} W-{e.worker or '-'} {e.level}{rid}" if i == 0 else " " * 4
                out.append(f"{prefix} {line}")
        return "\n".join(out) or "no log lines yet"

    def __repr__(self) -> str:
        return self.to_text()
