"""``context.metrics``: TorchServe's metrics cache (``add_counter`` ... ``add_metric_to_cache``,
``get_metric``), and the deprecated ``MetricsStore`` with the same ``add_*`` calls.

A metric is known by (type, name); the first ``add_*`` of a name declares it with the dimension names
it was given plus the defaults TorchServe adds (``ModelName`` and ``Level: Model``, or ``Level: Error``
for ``add_error``). A metrics config (TorchServe's ``metrics.yaml`` form) declares metrics up front.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ts_notebook.handler.metrics_api import (
    DEFAULT_MODEL_METRICS,
    CachingMetric,
    Dimension,
    MetricRecord,
    MetricsCacheIOError,
    MetricsCacheKeyError,
    MetricsCachePyYamlError,
    MetricsCacheValueError,
    MetricTypes,
    _check,
    logger,
)
from ts_notebook.jsontypes import JsonObject

TIME_UNITS = ("ms", "s")
SIZE_UNITS = ("MB", "kB", "GB", "B")


class MetricsCache:
    """The cache a worker puts on ``context.metrics``; ``records`` collects what was reported."""

    def __init__(self, config_file_path: str | Path | None = None, model_name: str | None = None) -> None:
        self.cache: dict[MetricTypes, dict[str, CachingMetric]] = {}
        self.records: list[MetricRecord] = []
        self.request_ids: Any = None
        self.model_name = model_name
        self.config_file_path = config_file_path
        self._model_metrics = self._read(config_file_path) if config_file_path else DEFAULT_MODEL_METRICS

    @staticmethod
    def _read(path: str | Path) -> JsonObject:
        try:
            parsed = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise MetricsCachePyYamlError(f"Error parsing file {path}: {exc}") from exc
        except OSError as exc:
            raise MetricsCacheIOError(f"Error reading file {path}: {exc}") from exc
        section = parsed.get("model_metrics") if isinstance(parsed, dict) else None
        return section if isinstance(section, dict) else {}

    def initialize_cache(self) -> None:
        """Declare the config's model metrics (HandlerTime and PredictionTime by default)."""
        if not self._model_metrics:
            raise MetricsCacheValueError("Missing `model_metrics` specification")
        for kind, specs in self._model_metrics.items():
            try:
                metric_type = MetricTypes(kind)
            except ValueError as exc:
                raise MetricsCacheKeyError(f"Invalid metric type: {exc}") from exc
            for spec in specs or []:
                try:
                    self.add_metric_to_cache(spec["name"], spec["unit"], list(spec["dimensions"]), metric_type)
                except KeyError as exc:
                    raise MetricsCacheKeyError(f"Key not found in cache spec: {exc}") from exc

    def set_request_ids(self, request_ids: Any) -> None:
        self.request_ids = request_ids

    def _get_req(self, idx: Any) -> Any:
        ids = self.request_ids
        if idx is not None and isinstance(ids, dict) and idx in ids:
            return ids[idx]
        return ",".join(map(str, ids.values())) if isinstance(ids, dict) else ids

    def _default_dims(self, req_id: Any, dimensions: list[Dimension] | None) -> list[Dimension]:
        dims = list(dimensions or [])  # never the caller's list: TorchServe's shared default grows
        names = {d.name for d in dims}
        if req_id is None:
            dims += [] if "Level" in names else [Dimension("Level", "Error")]
            return dims
        dims += [] if "ModelName" in names else [Dimension("ModelName", self.model_name)]
        dims += [] if "Level" in names else [Dimension("Level", "Model")]
        return dims

    def _report(
        self, name: str, value: float, unit: str, idx: Any, dims: list[Dimension] | None, kind: MetricTypes
    ) -> None:
        req_id = self._get_req(idx)
        full = self._default_dims(req_id, dims)
        metric = self._get_or_add(name, unit, full, kind)
        metric.add_or_update(value, [d.value for d in full], req_id)

    def add_metric(
        self,
        name: str,
        value: float,
        unit: str,
        idx: Any = None,
        dimensions: list[Dimension] | None = None,
        metric_type: MetricTypes = MetricTypes.COUNTER,
    ) -> None:
        self._report(name, value, unit, idx, dimensions, metric_type)

    def add_counter(self, name: str, value: float, idx: Any = None, dimensions: list[Dimension] | None = None) -> None:
        self._report(name, value, "count", idx, dimensions, MetricTypes.COUNTER)

    def add_time(
        self,
        name: str,
        value: float,
        idx: Any = None,
        unit: str = "ms",
        dimensions: list[Dimension] | None = None,
        metric_type: MetricTypes = MetricTypes.GAUGE,
    ) -> None:
        if unit not in TIME_UNITS:
            raise MetricsCacheValueError("the unit for a timed metric should be one of ['ms', 's']")
        self._report(name, value, unit, idx, dimensions, metric_type)

    def add_size(
        self,
        name: str,
        value: float,
        idx: Any = None,
        unit: str = "MB",
        dimensions: list[Dimension] | None = None,
        metric_type: MetricTypes = MetricTypes.GAUGE,
    ) -> None:
        if unit not in SIZE_UNITS:
            raise ValueError("The unit for size based metric is one of ['MB','kB', 'GB', 'B']")
        self._report(name, value, unit, idx, dimensions, metric_type)

    def add_percent(
        self,
        name: str,
        value: float,
        idx: Any = None,
        dimensions: list[Dimension] | None = None,
        metric_type: MetricTypes = MetricTypes.GAUGE,
    ) -> None:
        self._report(name, value, "percent", idx, dimensions, metric_type)

    def add_error(self, name: str, value: float, dimensions: list[Dimension] | None = None) -> None:
        full = self._default_dims(None, dimensions)
        self._get_or_add(name, "", full, MetricTypes.COUNTER).add_or_update(value, [d.value for d in full])

    def _get_or_add(self, name: str, unit: str, dims: list[Dimension], kind: MetricTypes) -> CachingMetric:
        try:
            return self.get_metric(name, kind)
        except MetricsCacheKeyError:
            return self.add_metric_to_cache(name, unit, [d.name for d in dims], kind)

    def add_metric_to_cache(
        self,
        metric_name: str,
        unit: str,
        dimension_names: list[str] | None = None,
        metric_type: MetricTypes = MetricTypes.COUNTER,
    ) -> CachingMetric:
        """Declare a metric (replacing one of the same type and name) and return it."""
        _check(metric_name, str, "`metric_name` must be a str")
        _check(unit, str, "`unit` must be a str")
        _check(metric_type, MetricTypes, "`metric_type` must be a MetricTypes enum")
        if dimension_names:
            _check(dimension_names, list, "`dimension_names` should be a list of dimension name strings")
        by_name = self.cache.setdefault(metric_type, {})
        if metric_name in by_name:
            logger.warning("Overriding existing key %s:%s", metric_type, metric_name)
        metric = CachingMetric(metric_name, unit, dimension_names, metric_type, sink=self.records)
        by_name[metric_name] = metric
        return metric

    def get_metric(self, metric_name: str, metric_type: MetricTypes = MetricTypes.COUNTER) -> CachingMetric:
        _check(metric_name, str, "`metric_name` must be a str")
        _check(metric_type, MetricTypes, "`metric_type` must be a MetricTypes enum")
        try:
            return self.cache[metric_type][metric_name]
        except KeyError:
            raise MetricsCacheKeyError(
                f"Metric of type '{metric_type}' and name '{metric_name}' doesn't exist"
            ) from None

    def cache_keys(self) -> list[str]:
        return [f"{kind.value}:{name}" for kind, by_name in self.cache.items() for name in by_name]


class MetricsStore(MetricsCache):
    """TorchServe's deprecated store (``MetricsStore(request_ids, model_name)``): the same ``add_*``
    calls, every metric a counter-like record under its own dimensions."""

    def __init__(self, request_ids: Any, model_name: str) -> None:
        super().__init__(None, model_name)
        self.request_ids = request_ids
        self.store: list[CachingMetric] = []


# The names TorchServe's modules give the same cache.
MetricCacheAbstract = MetricsCache
MetricsCacheYamlImpl = MetricsCache
