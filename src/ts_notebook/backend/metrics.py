"""Prometheus metrics with TorchServe's names and labels (``ts_inference_requests_total``,
``ts_inference_latency_microseconds``, ``ts_queue_latency_microseconds``, ``Requests2XX/4XX/5XX``,
``PredictionTime``, ``HandlerTime``, ``WorkerLoadTime``), in a registry of our own."""

from __future__ import annotations

import socket

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

HOST = socket.gethostname()


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # TorchServe exposes no *_created samples
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["model_name", "model_version", "hostname"]
        unit = "Torchserve prometheus counter metric with unit: "
        self.requests = Counter("ts_inference_requests", unit + "Count", labels, registry=self.registry)
        self.latency = Counter(
            "ts_inference_latency_microseconds", unit + "Microseconds", labels, registry=self.registry
        )
        self.queue_latency = Counter(
            "ts_queue_latency_microseconds", unit + "Microseconds", labels, registry=self.registry
        )
        by_class = {}
        for klass in ("2XX", "4XX", "5XX"):
            by_class[klass] = Counter(f"Requests{klass}", unit + "Count", ["Level", "Hostname"], registry=self.registry)
        self.by_class = by_class
        gauge = "Torchserve prometheus gauge metric with unit: "
        self.prediction_time = Gauge(
            "PredictionTime", gauge + "ms", ["ModelName", "Level", "Hostname"], registry=self.registry
        )
        self.handler_time = Gauge(
            "HandlerTime", gauge + "ms", ["ModelName", "Level", "Hostname"], registry=self.registry
        )
        self.worker_load_time = Gauge(
            "WorkerLoadTime", gauge + "Milliseconds", ["WorkerName", "Level", "Hostname"], registry=self.registry
        )
        self.custom: dict[str, Gauge] = {}

    def request_done(self, model: str, version_label: str, status: int, latency_s: float, queue_s: float) -> None:
        labels = (model, version_label, HOST)
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).inc(latency_s * 1e6)
        self.queue_latency.labels(*labels).inc(queue_s * 1e6)
        klass = "2XX" if status < 300 else "4XX" if status < 500 else "5XX"
        self.by_class[klass].labels("Host", HOST).inc()

    def http_status(self, status: int) -> None:
        klass = "2XX" if status < 300 else "4XX" if status < 500 else "5XX"
        self.by_class[klass].labels("Host", HOST).inc()

    def handler_metric(self, model: str, record: dict[str, object]) -> None:
        name = str(record.get("name", ""))
        value = record.get("value")
        if not isinstance(value, (int, float)):
            return
        if name == "HandlerTime":
            self.handler_time.labels(model, "Model", HOST).set(value)
            return
        safe = "".join(c if c.isalnum() or c == "_" else "_" for c in name) or "HandlerMetric"
        gauge = self.custom.get(safe)
        if gauge is None:
            gauge = Gauge(
                safe,
                f"Handler metric with unit: {record.get('unit', '')}",
                ["ModelName", "Level", "Hostname"],
                registry=self.registry,
            )
            self.custom[safe] = gauge
        gauge.labels(model, "Model", HOST).set(value)

    def render(self) -> bytes:
        return generate_latest(self.registry)
