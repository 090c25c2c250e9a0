"""``ts.metrics`` as handlers see it: dimensions, metric types, the metrics cache on ``context.metrics``
and its metric objects, plus the older ``MetricsStore`` that TorchServe's own test contexts build.

Each value a handler reports becomes a ``MetricRecord`` in the cache's ``records`` (TorchServe's worker
prints a ``[METRICS]`` line instead); our worker hands the records to the backend after each batch,
which exposes them on ``/metrics`` under TorchServe's rules, and the dry run shows them.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from typing import Any

import yaml

from ts_notebook.jsontypes import JsonObject

logger = logging.getLogger("ts.metrics")

# TorchServe's unit spellings: what a handler writes -> the name /metrics shows.
UNIT_NAMES: dict[str | None, str] = {
    "ms": "Milliseconds",
    "s": "Seconds",
    "percent": "Percent",
    "count": "Count",
    "MB": "Megabytes",
    "GB": "Gigabytes",
    "kB": "Kilobytes",
    "B": "Bytes",
    "": "unit",
    None: "unit",
}
# The model metrics every TorchServe worker declares (its default metrics config).
DEFAULT_MODEL_METRICS: dict[str, list[JsonObject]] = {
    "gauge": [
        {"name": "HandlerTime", "unit": "ms", "dimensions": ["ModelName", "Level"]},
        {"name": "PredictionTime", "unit": "ms", "dimensions": ["ModelName", "Level"]},
    ]
}


class MetricTypes(enum.Enum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


class Units:
    def __init__(self) -> None:
        self.units = dict(UNIT_NAMES)


class Dimension:
    """One label of a metric: a name and its value."""

    def __init__(self, name: str, value: Any) -> None:
        self.name = name
        self.value = value

    def __str__(self) -> str:
        return f"{self.name}:{self.value}"

    def to_dict(self) -> JsonObject:
        return {"Name": self.name, "Value": self.value}


class GeneralMetricsCacheError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(f"Generic error: {message}")


class MetricsCacheIOError(IOError):
    def __init__(self, message: str) -> None:
        super().__init__(f"Error reading file: {message}")


class MetricsCachePyYamlError(yaml.YAMLError):
    def __init__(self, message: str) -> None:
        super().__init__(f"Error parsing file: {message}")


class MetricsCacheTypeError(TypeError):
    pass


class MetricsCacheValueError(ValueError):
    pass


class MetricsCacheKeyError(KeyError):
    pass


@dataclass
class MetricRecord:
    """One value a handler reported: what the backend turns into a Prometheus sample."""

    name: str
    value: float
    unit: str  # already TorchServe's long name ("Milliseconds")
    kind: str  # counter | gauge | histogram
    dimensions: list[tuple[str, str]] = field(default_factory=list)
    request_id: str | None = None


class CachingMetric:
    """A metric declared in the cache; each update is recorded for the backend."""

    def __init__(
        self,
        metric_name: str,
        unit: str,
        dimension_names: list[str] | None = None,
        metric_type: MetricTypes = MetricTypes.COUNTER,
        sink: list[MetricRecord] | None = None,
    ) -> None:
        self.metric_name = metric_name
        self.unit = UNIT_NAMES.get(unit, unit)
        self.dimension_names = list(dimension_names or [])
        self.metric_type = metric_type
        self._sink = sink if sink is not None else []

    def add_or_update(self, value: float, dimension_values: list[Any] | None = None, request_id: Any = "") -> None:
        """Record ``value`` with one value per dimension name; a mismatch or a negative counter is
        logged and dropped, as TorchServe does (the handler keeps running)."""
        values = list(dimension_values or [])
        if len(values) != len(self.dimension_names):
            logger.error(
                "[METRICS]Failed to update metric with name:%s with value: %s: Dimension values: %s should "
                "correspond to Dimension names: %s",
                self.metric_name,
                value,
                values,
                self.dimension_names,
            )
            return
        if self.metric_type is MetricTypes.COUNTER and value < 0:
            logger.error(
                "[METRICS]Failed to update metric with name:%s: counter values cannot be negative", self.metric_name
            )
            return
        dims = [(n, str(v)) for n, v in zip(self.dimension_names, values, strict=True)]
        rid = None if request_id in ("", None) else str(request_id)
        self._sink.append(MetricRecord(self.metric_name, float(value), self.unit, self.metric_type.value, dims, rid))

    def update(self, value: float, request_id: Any = "", dimensions: list[Dimension] | None = None) -> None:
        """The older call: the dimensions replace the declared names."""
        dims = list(dimensions or [])
        self.dimension_names = [d.name for d in dims]
        self.add_or_update(value, [d.value for d in dims], request_id)


MetricAbstract = CachingMetric  # the base TorchServe's own metric classes name


def _check(value: Any, kind: type, message: str) -> None:
    if not isinstance(value, kind):
        raise MetricsCacheTypeError(message)
