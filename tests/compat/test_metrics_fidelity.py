"""A handler using TorchServe's metrics API, served by real TorchServe 0.12.0 and by our backend with the
same metrics settings: the same answers, and the same ``/metrics`` families, types, HELP lines and labels,
with the same values wherever a value does not depend on timing or the machine's load."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ts_notebook.archive import build_archive

from .embedded import http, side_by_side

pytestmark = pytest.mark.compat

HANDLER = """
from ts.metrics.dimension import Dimension
from ts.metrics.metric_type_enum import MetricTypes
from ts.torch_handler.base_handler import BaseHandler


class Metered(BaseHandler):
    def initialize(self, context):
        self.initialized = True
        self.hits = context.metrics.add_metric_to_cache(
            "Hits", unit="count", dimension_names=["ModelName", "Kind"], metric_type=MetricTypes.COUNTER
        )

    def handle(self, data, context):
        m = context.metrics
        out = []
        for row in data:
            self.hits.add_or_update(2, [context.model_name, "row"])
            self.hits.add_or_update(1, ["too few dimension values"])  # logged and dropped by both
            m.add_counter("RowsSeen", 1, dimensions=[Dimension("Kind", "x")])
            m.add_time("MyTime", 12.5, unit="ms")
            m.add_size("MySize", 3, unit="MB")
            m.add_percent("MyPct", 50)
            m.add_metric("Generic", 7, unit="widgets", metric_type=MetricTypes.GAUGE)
            hist = m.add_metric_to_cache("Hist", unit="ms", dimension_names=["ModelName", "Level"],
                                         metric_type=MetricTypes.HISTOGRAM)
            hist.add_or_update(4.0, [context.model_name, "Model"])
            hist.add_or_update(0.02, [context.model_name, "Model"])
            out.append({"metric": m.get_metric("Hits", MetricTypes.COUNTER).metric_name,
                        "keys": sorted(k for k in m.cache_keys() if "Time" not in k)})
        return out
"""
# Families whose values depend on timing or on the machine; their names, types and labels still agree.
TIMED = re.compile(
    r"^(ts_inference_latency|ts_queue_latency|QueueTime|WorkerThreadTime|WorkerLoadTime|PredictionTime|"
    r"HandlerTime|CPU|Memory|Disk|Requests)"
)
HOST = re.compile(r"^(CPU|Memory|Disk|GPU)")
SAMPLE = re.compile(r"^(?P<name>[A-Za-z_:][\w:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)$")


def _exposition(text: str) -> tuple[dict[str, str], dict[tuple[str, frozenset[tuple[str, str]]], str]]:
    """(name -> "HELP | TYPE", (sample name, labels) -> value, values of timed families blanked)."""
    heads: dict[str, str] = {}
    samples: dict[tuple[str, frozenset[tuple[str, str]]], str] = {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            _, kind, name, rest = line.split(" ", 3)
            heads[name] = f"{heads.get(name, '')}{kind}:{rest}|"
        elif match := SAMPLE.match(line):
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match["labels"] or ""))
            value = "" if TIMED.match(match["name"]) else match["value"]
            samples[(match["name"], labels)] = value
    return heads, samples


def _declared_config(ts_ref_venv: Path, folder: Path) -> Path:
    """TorchServe's own metrics config with one of the handler's metrics (Hits) declared."""
    shipped = next(ts_ref_venv.glob("lib/python*/site-packages/ts/configs/metrics.yaml"))
    config = yaml.safe_load(shipped.read_text())
    config["model_metrics"]["counter"] = [{"name": "Hits", "unit": "count", "dimensions": ["ModelName", "Kind"]}]
    path = folder / "metrics.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


MODES = {
    "auto_detect": {"metrics_mode": "prometheus", "model_metrics_auto_detect": "true"},
    "declared_only": {"metrics_mode": "prometheus"},  # + metrics_config naming Hits
    "log": {"metrics_mode": "log"},
}


@pytest.fixture(scope="module", params=list(MODES))
def metered(
    request: pytest.FixtureRequest, ts_ref_venv: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, tuple[str, str]]]:
    """(inference, metrics) URLs of TorchServe and ours, each serving the Metered handler as `mh`."""
    folder = tmp_path_factory.mktemp("metered")
    (folder / "metered.py").write_text(HANDLER)
    archive = build_archive("mh", "1.0", str(folder / "metered.py"), export_path=folder).path
    props = dict(MODES[request.param])
    if request.param == "declared_only":
        props["metrics_config"] = str(_declared_config(ts_ref_venv, folder))
    root = tmp_path_factory.mktemp("metered-ours")
    query = ("url=mh.mar&initial_workers=1&synchronous=true",)
    with side_by_side(ts_ref_venv, root, [archive], props, query) as (ts, ours):
        yield {"ts": (ts.inference_url, ts.metrics_url), "ours": (ours.inference_url, ours.info.metrics_address)}


def test_metrics_api_answers_and_metrics_agree(metered: dict[str, tuple[str, str]]) -> None:
    answers, expositions = {}, {}
    for server, (inference, metrics) in metered.items():
        answers[server] = [http("POST", f"{inference}/predictions/mh", b'{"a": 1}')[:2] for _ in range(3)]
        status, body, _ = http("GET", f"{metrics}/metrics")
        assert status == 200
        expositions[server] = body.decode()
    assert answers["ours"] == answers["ts"]
    assert answers["ts"][0][0] == 200
    heads_ts, samples_ts = _exposition(expositions["ts"])
    heads_ours, samples_ours = _exposition(expositions["ours"])
    # TorchServe samples the host gauges once a minute (the first time at start-up, late on a busy
    # machine); ours measure them at each scrape: a host sample TorchServe has not taken yet may be extra.
    assert {k: v for k, v in heads_ours.items() if k in heads_ts} == heads_ts
    assert not [k for k in heads_ours if k not in heads_ts and not HOST.match(k)], (heads_ours, heads_ts)
    differ = {k: (v, samples_ts.get(k)) for k, v in samples_ours.items() if samples_ts.get(k) != v}
    assert all(HOST.match(name) and (name, labels) not in samples_ts for name, labels in differ), differ
    assert all(k in samples_ours for k in samples_ts), set(samples_ts) - set(samples_ours)
    if expositions["ts"]:  # prometheus mode: the handler's counter went up by 2 a request, dropped calls aside
        hits = {labels: value for (name, labels), value in samples_ts.items() if name == "Hits"}
        assert list(hits.values()) == ["6.0"], hits
        assert len(samples_ts) > 10


def test_metrics_mode_rules(metered: dict[str, tuple[str, str]], request: pytest.FixtureRequest) -> None:
    """What each setting shows, on both servers: nothing in log mode; a handler's own metrics only when
    declared or auto-detected; the front end's counters always in prometheus mode."""
    mode = request.node.callspec.params["metered"]
    for server, (inference, metrics) in metered.items():
        http("POST", f"{inference}/predictions/mh", b"{}")
        text = http("GET", f"{metrics}/metrics")[1].decode()
        heads, samples = _exposition(text)
        names = {name for name, _ in samples}
        if mode == "log":
            assert text == "", server
            continue
        assert "ts_inference_requests_total" in names and "PredictionTime" in heads, server
        assert ("Hits" in names) and (("MyTime" in names) == (mode == "auto_detect")), (server, sorted(names))
        only = http("GET", f"{metrics}/metrics?name[]=Hits")[1].decode()
        assert set(_exposition(only)[0]) == {"Hits"}, server
