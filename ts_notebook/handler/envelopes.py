"""Request envelopes (``ts.torch_handler.request_envelope``): wrappers around a handler's ``handle``
that unpack an orchestrator's request format into the rows the handler expects, and pack the answers
back. TorchServe picks one with the ``service_envelope`` setting (KServe's TorchServe runtime sets
``kserve`` or ``kservev2``); so do our workers.

The KServe v2 envelope is written without numpy (TorchServe's uses it), so workers need nothing more.
"""

from __future__ import annotations

import json
from base64 import b64decode
from collections.abc import Callable
from typing import Any

from ts_notebook.jsontypes import JsonObject

Handle = Callable[[Any, Any], Any]


class BaseEnvelope:
    """Unpack the rows, run the handler, pack its answers."""

    def __init__(self, handle_fn: Handle) -> None:
        self._handle_fn = handle_fn
        self.context: Any = None

    def handle(self, data: Any, context: Any) -> Any:
        self.context = context
        rows = self.parse_input(data) if data else data
        results = self._handle_fn(rows, context)
        return self.format_output(results) if results else results

    def parse_input(self, data: Any) -> Any:
        raise NotImplementedError

    def format_output(self, data: Any) -> Any:
        raise NotImplementedError


def _payload(row: Any) -> Any:
    return row.get("data") or row.get("body")


def _json(value: Any) -> Any:
    return json.loads(value.decode()) if isinstance(value, (bytes, bytearray)) else value


class BodyEnvelope(BaseEnvelope):
    """The handler gets each request's body (or ``data`` field) as it is."""

    def parse_input(self, data: Any) -> Any:
        return [_payload(row) for row in data]

    def format_output(self, data: Any) -> Any:
        return data


class JSONEnvelope(BaseEnvelope):
    """TF-Serving style: ``{"instances": [...]}`` in, ``{"predictions": [...]}`` out (one JSON string per
    request); the instances of all requests are one batch for the handler; ``{"b64": ...}`` is decoded."""

    def __init__(self, handle_fn: Handle) -> None:
        super().__init__(handle_fn)
        self._lengths: list[int] = []

    def parse_input(self, data: Any) -> Any:
        groups = [self._instances(row) for row in data]
        self._lengths = [len(g) for g in groups]
        return [item for group in groups for item in group]

    @staticmethod
    def _instances(row: Any) -> list[Any]:
        rows = (_payload(row) or row)["instances"]
        for i, item in enumerate(rows):
            if not isinstance(item, dict):
                continue
            if list(item) == ["b64"]:
                rows[i] = b64decode(item["b64"])
                continue
            for key, value in item.items():
                if isinstance(value, dict) and list(value) == ["b64"]:
                    item[key] = b64decode(value["b64"])
        return list(rows)

    def format_output(self, data: Any) -> Any:
        out, start = [], 0
        for length in self._lengths:
            out.append(json.dumps({"predictions": data[start : start + length]}))
            start += length
        return out


class KServeEnvelope(BaseEnvelope):
    """KServe v1: the first request's ``instances`` go to the handler; one ``{"predictions": ...}`` (or
    ``explanations`` when the ``explain`` header is ``True``) comes back."""

    def parse_input(self, data: Any) -> Any:
        self._data_list = [_payload(row) for row in data]
        return _json(self._data_list[0]).get("instances")

    def format_output(self, data: Any) -> Any:
        explain = self.context is not None and self.context.get_request_header(0, "explain") == "True"
        return [{"explanations" if explain else "predictions": data}]


def _reshape(flat: list[Any], shape: list[int]) -> Any:
    if len(shape) <= 1:
        return list(flat)
    step = len(flat) // shape[0] if shape[0] else 0
    return [_reshape(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def _flatten(value: Any) -> list[Any]:
    if hasattr(value, "tolist"):  # a tensor or an array
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [x for item in value for x in _flatten(item)]
    return [value]


def _datatype(values: list[Any]) -> str:
    """The v2 datatype of a flat list, as numpy would infer it (int64, float64, bool, bytes/str)."""
    if values and all(isinstance(v, bool) for v in values):
        return "BOOL"
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "FP64"
    return "BYTES"


def _like_numpy(flat: list[Any]) -> list[Any]:
    """The values as ``numpy.array(values).tolist()`` gives them back: one common number type."""
    numbers = [v for v in flat if isinstance(v, (int, float))]
    if len(numbers) != len(flat) or all(isinstance(v, bool) for v in flat):
        return flat
    if any(isinstance(v, float) for v in flat):
        return [float(v) for v in flat]
    return [int(v) for v in flat]


class KServev2Envelope(BaseEnvelope):
    """KServe v2 (open inference protocol): each input's ``data`` reshaped to its ``shape`` for the
    handler; each answer one output named after the matching input, flattened, with its datatype."""

    def parse_input(self, data: Any) -> Any:
        bodies = [_json(_payload(row)) for row in data]
        first = bodies[0]
        names = []
        for item in first["inputs"]:
            if item["datatype"] == "BYTES":
                item["data"] = item["data"][0]
            else:
                item["data"] = _reshape(_like_numpy(_flatten(item["data"])), list(item["shape"]))
            names.append(item["name"])
        self.context.input_names = names
        request_id = first.get("id")
        if request_id and str(request_id).strip():
            self.context.input_request_id = request_id
        return first.get("inputs")

    def format_output(self, data: Any) -> Any:
        context = self.context
        response: JsonObject = {"id": getattr(context, "input_request_id", None) or context.get_request_id(0)}
        if hasattr(context, "input_request_id"):
            del context.input_request_id
        model = (context.manifest or {}).get("model", {})
        response["model_name"] = model.get("modelName")
        response["model_version"] = model.get("modelVersion")
        names = context.input_names
        del context.input_names
        response["outputs"] = [self._output(item, names[i]) for i, item in enumerate(data)]
        return [response]

    @staticmethod
    def _output(item: Any, name: str) -> JsonObject:
        flat = _like_numpy(_flatten(item))
        return {"name": name, "datatype": _datatype(flat), "data": flat, "shape": [len(flat)]}


ENVELOPES: dict[str, type[BaseEnvelope]] = {
    "body": BodyEnvelope,
    "json": JSONEnvelope,
    "kserve": KServeEnvelope,
    "kservev2": KServev2Envelope,
}


def wrap(handle: Handle, envelope: str | None) -> Handle:
    """``handle`` behind the named envelope (TorchServe's ``service_envelope``), or as it is."""
    if not envelope:
        return handle
    if envelope not in ENVELOPES:
        raise ValueError(f"service_envelope={envelope!r} is not one of {', '.join(ENVELOPES)}")
    return ENVELOPES[envelope](handle).handle
