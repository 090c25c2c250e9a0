"""A TorchServe 0.12-compatible ``Context``: what a handler gets at ``initialize`` and ``handle``.

Same public surface as ``ts.context.Context`` (system_properties, manifest, model_name,
model_yaml_config, request_ids, metrics, per-request headers and response status/headers), so
handlers written for TorchServe run unchanged against it.
"""

from __future__ import annotations

import os
from typing import Any

from ts_notebook.jsontypes import JsonObject

SERVER_VERSION = "0.12.0"


class RequestProcessor:
    """One request's headers (case-sensitive, as the client sent them) and its response settings."""

    def __init__(self, request_header: JsonObject) -> None:
        self._request_header = request_header
        self._status_code = 200
        self._reason_phrase: str | None = None
        self._response_header: dict[str, str] = {}

    def get_request_property(self, key: str) -> Any:
        return self._request_header.get(key)

    def get_request_properties(self) -> JsonObject:
        return self._request_header

    def report_status(self, code: int, reason_phrase: str | None = None) -> None:
        self._status_code = code
        self._reason_phrase = reason_phrase

    def get_response_status_code(self) -> int:
        return self._status_code

    def get_response_status_phrase(self) -> str | None:
        return self._reason_phrase

    def add_response_property(self, key: str, value: str) -> None:
        self._response_header[key] = value

    def get_response_headers(self) -> dict[str, str]:
        return self._response_header

    def get_response_header(self, key: str) -> str | None:
        return self._response_header.get(key)


def _default_metrics(model_name: str) -> Any:
    """The cache a TorchServe worker gives a handler: the default model metrics declared."""
    from ts_notebook.handler.metrics_cache import MetricsCache

    cache = MetricsCache(model_name=model_name)
    cache.initialize_cache()
    return cache


class Context:
    """What TorchServe passes to ``initialize(context)`` and ``handle(data, context)``."""

    def __init__(
        self,
        model_name: str,
        model_dir: str,
        manifest: JsonObject | None,
        batch_size: int,
        gpu: int | None,
        mms_version: str = SERVER_VERSION,
        limit_max_image_pixels: bool = True,
        metrics: Any = None,
        model_yaml_config: JsonObject | None = None,
    ) -> None:
        self.model_name = model_name
        self.manifest = manifest
        self._system_properties: JsonObject = {
            "model_dir": model_dir,
            "gpu_id": gpu,
            "batch_size": batch_size,
            "server_name": "MMS",  # TorchServe 0.12 still reports its predecessor's name
            "server_version": mms_version,
            "limit_max_image_pixels": limit_max_image_pixels,
        }
        self.request_ids: dict[int, str] | None = None
        self._request_processor: list[RequestProcessor] | None = None
        self._limit_max_image_pixels = True
        self._metrics: Any = metrics if metrics is not None else _default_metrics(model_name)
        self.model_yaml_config = model_yaml_config if model_yaml_config is not None else {}
        self.stopping_criteria: Any = None
        self.header_key_sequence_id = os.getenv("TS_REQUEST_SEQUENCE_ID", "ts_request_sequence_id")
        self.header_key_sequence_start = os.getenv("TS_REQUEST_SEQUENCE_START", "ts_request_sequence_start")
        self.header_key_sequence_end = os.getenv("TS_REQUEST_SEQUENCE_END", "ts_request_sequence_end")

    @property
    def system_properties(self) -> JsonObject:
        return self._system_properties

    @property
    def request_processor(self) -> list[RequestProcessor] | None:
        return self._request_processor

    @request_processor.setter
    def request_processor(self, value: list[RequestProcessor] | None) -> None:
        self._request_processor = value

    @property
    def metrics(self) -> Any:
        return self._metrics

    @metrics.setter
    def metrics(self, value: Any) -> None:
        self._metrics = value

    def _processor(self, idx: int) -> RequestProcessor:
        if not self._request_processor:
            raise IndexError("no request in this context yet: headers exist only inside handle(data, context)")
        return self._request_processor[idx]

    def get_request_id(self, idx: int = 0) -> str | None:
        return self.request_ids.get(idx) if self.request_ids else None

    def get_request_header(self, idx: int, key: str) -> Any:
        return self._processor(idx).get_request_property(key)

    def get_all_request_header(self, idx: int) -> JsonObject:
        return self._processor(idx).get_request_properties()

    def set_response_content_type(self, idx: int, value: str) -> None:
        self.set_response_header(idx, "content-type", value)

    def get_response_content_type(self, idx: int) -> str | None:
        return self.get_response_headers(idx).get("content-type")

    def get_response_status(self, idx: int) -> tuple[int, str | None]:
        p = self._processor(idx)
        return p.get_response_status_code(), p.get_response_status_phrase()

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None:
        if self._request_processor:
            self._request_processor[idx].report_status(code, reason_phrase=phrase)

    def set_all_response_status(self, code: int = 200, phrase: str = "") -> None:
        for p in self._request_processor or []:
            p.report_status(code, reason_phrase=phrase)

    def get_response_headers(self, idx: int) -> dict[str, str]:
        return self._processor(idx).get_response_headers()

    def set_response_header(self, idx: int, key: str, value: str) -> None:
        self._processor(idx).add_response_property(key, value)

    def get_sequence_id(self, idx: int) -> Any:
        return self._processor(idx).get_request_property(self.header_key_sequence_id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Context) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # mutable and compared by value, like TorchServe's
