"""``/metrics`` as TorchServe 0.12.0 serves it in ``metrics_mode=prometheus``.

Names, HELP texts, types and label orders are TorchServe's (checked side by side in
tests/compat/test_metrics_fidelity.py): the front end's counters keep their exact names
(``ts_inference_latency_microseconds`` is a counter without ``_total``), host gauges carry
``Level``/``Hostname``, model metrics their dimension names plus ``Hostname``. A handler's own metrics
appear when the metrics config declares them or ``model_metrics_auto_detect`` is true, as there.
The text is written here rather than by prometheus_client, which would rename those counters.

``metrics_mode=log`` answers an empty page, as TorchServe does by default; our default is
``prometheus`` (the notebook's metrics view reads it: a documented difference).
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import yaml

if TYPE_CHECKING:
    from ts_notebook.handler.metrics_api import MetricRecord

HOST = socket.gethostname()
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Prometheus's standard histogram buckets (TorchServe's Java client uses them for histograms).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_MODEL_LABELS = ("model_name", "model_version", "hostname")
_HOST_LABELS = ("Level", "Hostname")
# The front end's metrics: (type, name, unit, labels).
FRONTEND: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    *(("counter", f"Requests{k}", "Count", _HOST_LABELS) for k in ("2XX", "4XX", "5XX")),
    ("counter", "ts_inference_requests_total", "Count", _MODEL_LABELS),
    ("counter", "ts_inference_latency_microseconds", "Microseconds", _MODEL_LABELS),
    ("counter", "ts_queue_latency_microseconds", "Microseconds", _MODEL_LABELS),
    ("gauge", "QueueTime", "Milliseconds", _HOST_LABELS),
    ("gauge", "WorkerThreadTime", "Milliseconds", _HOST_LABELS),
    ("gauge", "WorkerLoadTime", "Milliseconds", ("WorkerName", *_HOST_LABELS)),
    *(
        ("gauge", name, unit, _HOST_LABELS)
        for name, unit in (
            ("CPUUtilization", "Percent"),
            ("MemoryUsed", "Megabytes"),
            ("MemoryAvailable", "Megabytes"),
            ("MemoryUtilization", "Percent"),
            ("DiskUsage", "Gigabytes"),
            ("DiskUtilization", "Percent"),
            ("DiskAvailable", "Gigabytes"),
        )
    ),
    *(
        ("gauge", name, unit, ("Level", "DeviceId", "Hostname"))
        for name, unit in (
            ("GPUMemoryUtilization", "Percent"),
            ("GPUMemoryUsed", "Megabytes"),
            ("GPUUtilization", "Percent"),
        )
    ),
)
DEFAULT_MODEL_METRICS = {"HandlerTime": ("gauge", "ms"), "PredictionTime": ("gauge", "ms")}


def number(value: float) -> str:
    """A double as Java prints it (TorchServe's exposition is Java's): 2.0, 0.005, 1.0E7, NaN."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    magnitude = abs(value)
    if magnitude != 0 and (magnitude >= 1e7 or magnitude < 1e-3):
        mantissa, exponent = f"{value:.16e}".split("e")
        digits = repr(float(mantissa)).rstrip("0")
        return f"{digits if not digits.endswith('.') else digits + '0'}E{int(exponent)}"
    return repr(float(value))


@dataclass
class Family:
    """One metric name: its type, HELP unit, label names and the samples by label values."""

    kind: str
    unit: str
    labels: tuple[str, ...]
    values: dict[tuple[str, ...], Any] = field(default_factory=dict)

    def observe(self, key: tuple[str, ...], value: float) -> None:
        if self.kind == "counter":
            self.values[key] = self.values.get(key, 0.0) + value
        elif self.kind == "gauge":
            self.values[key] = value
        else:  # histogram: [bucket counts..., count, sum]
            state = self.values.setdefault(key, [0.0] * (len(BUCKETS) + 2))
            for i, bound in enumerate(BUCKETS):
                state[i] += value <= bound
            state[-2] += 1
            state[-1] += value

    def lines(self, name: str) -> Iterable[str]:
        yield f"# HELP {name} Torchserve prometheus {self.kind} metric with unit: {self.unit}"
        yield f"# TYPE {name} {self.kind}"
        for key, value in self.values.items():
            labels = "".join(f'{n}="{_escape(v)}",' for n, v in zip(self.labels, key, strict=True))
            if self.kind != "histogram":
                yield f"{name}{{{labels}}} {number(value)}"
                continue
            for bound, count in zip((*BUCKETS, math.inf), (*value[: len(BUCKETS)], value[-2]), strict=True):
                yield f'{name}_bucket{{{labels}le="{number(bound)}",}} {number(count)}'
            yield f"{name}_count{{{labels}}} {number(value[-2])}"
            yield f"{name}_sum{{{labels}}} {number(value[-1])}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def declared_model_metrics(path: Path | None) -> dict[str, tuple[str, str]]:
    """name -> (type, unit) of the model metrics a metrics config declares (TorchServe's defaults if none)."""
    if path is None:
        return dict(DEFAULT_MODEL_METRICS)
    parsed = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    section = parsed.get("model_metrics") if isinstance(parsed, dict) else None
    declared: dict[str, tuple[str, str]] = {}
    for kind, specs in (section or {}).items():
        for spec in specs or []:
            if isinstance(spec, dict) and "name" in spec:
                declared[str(spec["name"])] = (str(kind), str(spec.get("unit", "")))
    return declared


_HOST_KEY = ("Host", HOST)
_UNSEEN = object()  # a (name, dimensions) not routed yet (None is a route: not exposed)


class Metrics:
    """Every family's values, updated as requests finish and workers report."""

    content_type = CONTENT_TYPE

    def __init__(self, mode: str = "prometheus", auto_detect: bool = False, config: Path | None = None) -> None:
        self.mode = mode
        self.auto_detect = auto_detect
        self.families: dict[str, Family] = {n: Family(k, u, labels) for k, n, u, labels in FRONTEND}
        self.declared = declared_model_metrics(config)
        # The families every request updates, looked up once (request_done runs on every request).
        self._per_request = tuple(
            self.families[name]
            for name in (
                "ts_inference_requests_total",
                "ts_inference_latency_microseconds",
                "ts_queue_latency_microseconds",
                "QueueTime",
                "WorkerThreadTime",
            )
        )
        self._routes: dict[tuple[object, ...], object] = {}  # (name, dimensions) -> _route's answer
        for name, (kind, unit) in self.declared.items():  # HELP shows a declared unit as written
            self.families.setdefault(name, Family(kind, unit, ()))

    def request_done(self, model: str, version_label: str, latency_s: float, queue_s: float, thread_s: float) -> None:
        """One answered prediction (its status is counted with every other answer, by the HTTP layer)."""
        key = (model, version_label, HOST)
        requests, latency, queue, queue_ms, thread_ms = self._per_request
        requests.observe(key, 1)
        latency.observe(key, latency_s * 1e6)
        queue.observe(key, queue_s * 1e6)
        queue_ms.observe(_HOST_KEY, float(int(queue_s * 1000)))
        thread_ms.observe(_HOST_KEY, float(int(thread_s * 1000)))  # the front end's time beside the handler's

    def worker_loaded(self, worker_name: str, load_ms: float) -> None:
        self._add("WorkerLoadTime", (worker_name, "Host", HOST), float(int(load_ms)))

    def http_status(self, status: int) -> None:
        self._add(f"Requests{'2XX' if status < 300 else '4XX' if status < 500 else '5XX'}", ("Host", HOST), 1)

    def _add(self, name: str, key: tuple[str, ...], value: float) -> None:
        self.families[name].observe(key, value)

    def handler_metric(self, record: MetricRecord) -> None:
        """A value a handler reported through ``context.metrics`` (HandlerTime among them).

        Every request reports the same few (name, dimensions): where each goes is worked out once
        and kept, so a report costs a dict lookup and an update.
        """
        value: object = record.value  # a handler may have reported anything: only numbers are samples
        if not isinstance(value, (int, float)):
            return
        try:
            seen = (record.name, tuple(record.dimensions))
            route = self._routes.get(seen, _UNSEEN)
        except TypeError:  # an unhashable dimension: route by its text
            seen = (str(record.name), tuple((str(n), str(v)) for n, v in record.dimensions))
            route = self._routes.get(seen, _UNSEEN)
        if route is _UNSEEN:
            route = self._routes[seen] = self._route(record)
        if route is not None:
            family, key = cast("tuple[Family, tuple[str, ...]]", route)
            family.observe(key, float(value))

    def _route(self, record: MetricRecord) -> tuple[Family, tuple[str, ...]] | None:
        """The family and label values a handler metric lands in, or None when it is not exposed."""
        dims = tuple((str(n), str(v)) for n, v in record.dimensions)
        name = str(record.name)
        if not name or name in _FRONTEND_NAMES:
            return None
        if name not in self.declared and not self.auto_detect:
            return None  # TorchServe drops model metrics its config does not name
        full = (*dims, ("Hostname", HOST))
        labels = tuple(n for n, _ in full)
        family = self.families.get(name)
        if family is None:
            kind = record.kind if record.kind in ("counter", "histogram") else "gauge"
            family = self.families[name] = Family(kind, str(record.unit), labels)
        elif not family.labels:  # declared by the config: its labels are the first report's
            family.labels = labels
        return (family, tuple(v for _, v in full)) if family.labels == labels else None

    def _system(self) -> None:
        """Host gauges, measured now (TorchServe samples them once a minute)."""
        try:
            import psutil
        except ImportError:
            return
        memory = psutil.virtual_memory()
        disk = psutil.disk_usage(os.sep)
        key = ("Host", HOST)
        for name, value in (
            ("CPUUtilization", psutil.cpu_percent(interval=None)),
            ("MemoryUsed", memory.used / 2**20),
            ("MemoryAvailable", memory.available / 2**20),
            ("MemoryUtilization", memory.percent),
            ("DiskUsage", disk.used / 2**30),
            ("DiskUtilization", disk.percent),
            ("DiskAvailable", disk.free / 2**30),
        ):
            self._add(name, key, float(value))

    def render(self, names: Iterable[str] = ()) -> bytes:
        """The exposition text (only the families in ``names`` when given, as ``?name[]=`` asks)."""
        if self.mode != "prometheus":
            return b""
        self._system()
        wanted = set(names)
        chosen = [(n, f) for n, f in self.families.items() if not wanted or n in wanted]
        lines = [line for name, family in chosen for line in family.lines(name)]
        return ("\n".join(lines) + "\n").encode() if lines else b""


_FRONTEND_NAMES = {name for _, name, _, _ in FRONTEND}
