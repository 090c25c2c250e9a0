"""Prometheus metrics with TorchServe's names and labels, rendered by prometheus_client.

``ts_inference_requests_total`` is a counter as in TorchServe. TorchServe's other counters have no
``_total`` suffix (``ts_inference_latency_microseconds``, ``ts_queue_latency_microseconds``,
``Requests2XX/4XX/5XX``); prometheus_client would add one to anything typed ``counter``, so those
are exposed untyped under their exact names, which dashboards written for TorchServe query.
"""

from __future__ import annotations

import socket
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

HOST = socket.gethostname()
COUNTER_HELP = "Torchserve prometheus counter metric with unit: "
GAUGE_HELP = "Torchserve prometheus gauge metric with unit: "
MODEL_LABELS = ["model_name", "model_version", "hostname"]


class Metrics:
    """Values kept as plain numbers; turned into metric families at each scrape."""

    content_type = CONTENT_TYPE_PLAIN_0_0_4

    def __init__(self) -> None:
        self.requests: defaultdict[tuple[str, ...], float] = defaultdict(float)
        self.latency: defaultdict[tuple[str, ...], float] = defaultdict(float)
        self.queue_latency: defaultdict[tuple[str, ...], float] = defaultdict(float)
        self.by_class: defaultdict[str, float] = defaultdict(float)
        self.gauges: dict[str, tuple[str, dict[tuple[str, ...], float]]] = {}  # name -> (unit, labels -> value)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def request_done(self, model: str, version_label: str, status: int, latency_s: float, queue_s: float) -> None:
        key = (model, version_label, HOST)
        self.requests[key] += 1
        self.latency[key] += latency_s * 1e6
        self.queue_latency[key] += queue_s * 1e6
        self.http_status(status)

    def http_status(self, status: int) -> None:
        self.by_class["2XX" if status < 300 else "4XX" if status < 500 else "5XX"] += 1

    def handler_metric(self, model: str, record: dict[str, Any]) -> None:
        """A value a handler reported through ``context.metrics`` (HandlerTime among them)."""
        value = record.get("value")
        if not isinstance(value, (int, float)):
            return
        name = "".join(c if c.isalnum() or c == "_" else "_" for c in str(record.get("name", ""))) or "HandlerMetric"
        _, values = self.gauges.setdefault(name, (str(record.get("unit", "")), {}))
        values[(model, "Model", HOST)] = float(value)

    def collect(self) -> Iterator[Metric]:
        counter = CounterMetricFamily("ts_inference_requests", COUNTER_HELP + "Count", labels=MODEL_LABELS)
        for key, value in self.requests.items():
            counter.add_metric(list(key), value)
        yield counter
        for name, totals in (
            ("ts_inference_latency_microseconds", self.latency),
            ("ts_queue_latency_microseconds", self.queue_latency),
        ):
            family = Metric(name, COUNTER_HELP + "Microseconds", "untyped")
            for key, value in totals.items():
                family.add_sample(name, dict(zip(MODEL_LABELS, key, strict=True)), value)
            yield family
        for klass in ("2XX", "4XX", "5XX"):
            family = Metric(f"Requests{klass}", COUNTER_HELP + "Count", "untyped")
            if klass in self.by_class:
                family.add_sample(f"Requests{klass}", {"Level": "Host", "Hostname": HOST}, self.by_class[klass])
            yield family
        for name, (unit, values) in self.gauges.items():
            gauge = GaugeMetricFamily(name, GAUGE_HELP + unit, labels=["ModelName", "Level", "Hostname"])
            for key, value in values.items():
                gauge.add_metric(list(key), value)
            yield gauge

    def render(self) -> bytes:
        return generate_latest(self.registry)
