"""Prometheus metrics (REPORT §6.1), the event record and the worker view the notebook reads."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

from tests.backend.conftest import Models
from tests.backend.helpers import Backend, call
from ts_notebook.records import LogLine, ServedRequest

SAMPLE = re.compile(r"^(?P<name>[A-Za-z_:][\w:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)$")


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and not line.startswith("#"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group("labels") or ""))
            out.append((match.group("name"), labels, float(match.group("value"))))
    return out


def _value(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float | None:
    for n, lab, value in samples:
        if n == name and all(lab.get(k) == v for k, v in labels.items()):
            return value
    return None


def test_prometheus_metrics_count_requests(backend: Backend, models: Models) -> None:
    models.register("probe.mar", "metered", initial_workers=1)
    for _ in range(3):
        assert backend.predict("metered").status == 200
    assert backend.predict("metered", mode="raise").status == 503
    assert backend.predict("metered", path="/predictions/metered/1.0").status == 200

    reply = call("GET", backend.metrics + "/metrics")
    assert reply.status == 200
    text = reply.text
    assert "# TYPE ts_inference_requests_total counter" in text
    assert "# HELP ts_inference_requests_total Torchserve prometheus counter metric with unit: Count" in text
    samples = _samples(text)
    assert _value(samples, "ts_inference_requests_total", model_name="metered", model_version="default") == 4.0
    assert _value(samples, "ts_inference_requests_total", model_name="metered", model_version="1.0") == 1.0
    latency = _value(samples, "ts_inference_latency_microseconds", model_name="metered", model_version="default")
    assert latency is not None and latency > 0
    queue = _value(samples, "ts_queue_latency_microseconds", model_name="metered", model_version="default")
    assert queue is not None and 0 <= queue <= latency
    assert (_value(samples, "Requests2XX", Level="Host") or 0) >= 4
    assert (_value(samples, "Requests5XX", Level="Host") or 0) >= 1


def test_metric_names_are_torchserves(backend: Backend, models: Models) -> None:
    models.register("probe.mar", "named", initial_workers=1)
    assert backend.predict("named").status == 200
    names = {name for name, _, _ in _samples(call("GET", backend.metrics + "/metrics").text)}
    for name in (
        "ts_inference_requests_total",
        "ts_inference_latency_microseconds",
        "ts_queue_latency_microseconds",
        "Requests2XX",
    ):
        assert name in names, sorted(names)


def test_metrics_content_type_is_torchserves(backend: Backend) -> None:
    reply = call("GET", backend.metrics + "/metrics")
    assert reply.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"


def test_request_events(backend: Backend, models: Models) -> None:
    models.register("probe.mar", "recorded", initial_workers=1)
    [worker] = backend.workers("recorded")
    since = backend.events().latest
    ok = backend.predict("recorded", b'{"input": [1, 2]}', mode="dict")
    bad = backend.predict("recorded", b"plain text", mode="raise", content_type="text/plain")

    record = backend.events(since=since, kind="request", model="recorded")
    assert record.latest >= record.next > since
    first, second = record.of(ServedRequest)
    assert len(record.events) == 2
    assert first.request_id == ok.headers["x-request-id"]
    assert first.status == 200
    assert first.shown().data == "{'body': {'input': [1, 2]}}"
    assert first.latency_ms > 0
    assert first.worker == worker.id
    assert (first.model, first.version) == ("recorded", "1.0")
    assert first.shown().response == ok.body.decode()  # the answer as text, as a person reads it
    assert second.request_id == bad.headers["x-request-id"]
    assert second.status == 503
    assert second.shown().data == "{'body': 'plain text'}"

    # "since" returns only what came after
    later = backend.events(since=record.next, kind="request", model="recorded")
    assert later.events == ()
    assert later.next == record.next


def test_handler_output_lines_are_log_events(backend: Backend, models: Models) -> None:
    models.register("probe.mar", "chatty", initial_workers=1)
    [worker] = backend.workers("chatty")
    since = backend.events().latest
    marker = uuid.uuid4().hex
    reply = backend.predict("chatty", mode="log", headers={"X-Marker": marker})
    assert reply.body == b"logged"
    rid = reply.headers["x-request-id"]
    logs = backend.events(since=since, kind="log", model="chatty").of(LogLine)
    printed = [e for e in logs if e.message == f"print-line {marker}"]
    logged = [e for e in logs if e.message == f"log-line {marker}"]
    assert len(printed) == 1 and len(logged) == 1, logs
    assert printed[0].request_id == rid and logged[0].request_id == rid
    assert printed[0].source == "stdout"
    assert (logged[0].level, logged[0].source) == ("WARNING", "probe")
    assert printed[0].worker == worker.id and printed[0].pid == worker.pid


def test_workers_view_has_context_each_worker_got(backend: Backend, models: Models) -> None:
    models.register("probe.mar", "ctxview", initial_workers=2)
    models.register("cfg.mar", "ctxcfg")
    workers = backend.workers("ctxview")
    assert len(workers) == 2
    for w in workers:
        props = w.system_properties
        model_dir = str(props["model_dir"])
        assert props == {
            "model_dir": model_dir,
            "gpu_id": None,
            "batch_size": 1,
            "server_name": "MMS",
            "server_version": "0.12.0",
            "limit_max_image_pixels": True,
        }
        assert w.gpu_id is None
        assert Path(model_dir).parent == backend.run_dir / "models"
        on_disk = json.loads((Path(model_dir) / "MAR-INF" / "MANIFEST.json").read_text())
        assert w.manifest == on_disk
        assert w.manifest["model"] == {"modelName": "probe", "handler": "probe_handler.py", "modelVersion": "1.0"}
        assert w.manifest["runtime"] == "python"
        assert w.threads >= 1
    # the handler runs in its model dir, and is told the registered name
    seen = backend.predict("ctxview", mode="whoami").json()
    assert seen["cwd"] == workers[0].system_properties["model_dir"]
    assert seen["model_name"] == "ctxview"
    assert seen["gpu_id"] is None

    [cfg] = backend.workers("ctxcfg")
    assert cfg.system_properties["batch_size"] == 2
    model = cfg.manifest["model"]
    assert isinstance(model, dict) and model["configFile"] == "model-config.yaml"
