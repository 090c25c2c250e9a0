"""Run an archive's handler in-process, the way a TorchServe worker runs it, for engines that are not
TorchServe: a Ray Serve replica or a KServe Python model server holds one ``HandlerRuntime``.

What the handler sees is what TorchServe gives it: the extracted archive as working dir and first
import path, the ``ts`` names (ours when torchserve is not installed), a Context with the manifest,
``model-config.yaml``, batch size and GPU id, requests shaped by content type, and the same
encoding of its answers and the same errors (503 "Prediction failed", a ``PredictionException``'s
code and message). So the handler written for TorchServe comes along unchanged.

This module and what it imports use only the standard library and PyYAML (plus torch when the
handler returns a tensor), so exports can ship it without the rest of ts_notebook.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ts_notebook.archive.extract import extract_archive, model_root
from ts_notebook.archive.folder import folder_manifest, model_config
from ts_notebook.handler.answers import encode_output
from ts_notebook.handler.payload import Request, make_request
from ts_notebook.jsontypes import JsonObject

log = logging.getLogger("ts_notebook.runtime")


@dataclass(frozen=True)
class Answer:
    """One request's answer: status, body bytes, content type (None when the handler set none), headers."""

    status: int
    body: bytes
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)


def _error(code: int, message: str) -> Answer:
    body = json.dumps({"code": code, "type": "InternalServerException", "message": message}, indent=2)
    return Answer(code, body.encode(), "application/json")


def _model_dir(archive: Path, work_dir: Path | None) -> Path:
    """The folder holding MAR-INF: a model folder as it is, an archive extracted (safely) first."""
    if archive.is_dir():
        return model_root(archive)
    target = work_dir or Path(tempfile.mkdtemp(prefix="ts-runtime-"))
    return model_root(extract_archive(archive, target / archive.name.split(".")[0]))


class HandlerRuntime:
    """One model's handler, loaded once and called with batches of requests.

    Args:
        archive: A .mar, .tar.gz or model folder (with or without MAR-INF).
        model_name: The served name (default: the manifest's).
        batch_size: What ``context.system_properties["batch_size"]`` says.
        gpu_id: The GPU the handler should use, or None for the CPU.
        envelope: TorchServe's ``service_envelope`` (``kserve``, ``kservev2``, ``json``, ``body``) or None.
        work_dir: Where an archive is extracted (default: a new temp folder).

    Raises:
        HandlerError: the handler module or its entry point cannot be loaded; whatever ``initialize`` raised.
    """

    def __init__(
        self,
        archive: str | os.PathLike[str],
        *,
        model_name: str | None = None,
        batch_size: int = 1,
        gpu_id: int | None = None,
        envelope: str | None = None,
        work_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        from ts_notebook.handler import compat
        from ts_notebook.handler.envelopes import wrap

        self.model_dir = _model_dir(Path(archive), Path(work_dir) if work_dir else None)
        self.manifest: JsonObject = folder_manifest(self.model_dir)
        model = self.manifest.setdefault("model", {})
        self.model_name = model_name or model.get("modelName") or self.model_dir.name
        self.config: JsonObject = model_config(self.model_dir, self.manifest)
        compat.install()  # the `ts` names, unless the real torchserve is importable
        self._lock = threading.Lock()  # handlers are not thread-safe; an engine may call from several threads
        self.context = self._context(batch_size, gpu_id)
        self._entry = self._load(model.get("handler") or "")
        self._handle = wrap(self._entry.handle, envelope) if envelope else self._entry.handle

    def _context(self, batch_size: int, gpu_id: int | None) -> Any:
        from ts_notebook.handler.context import Context
        from ts_notebook.handler.metrics_cache import MetricsCache

        metrics = MetricsCache(None, self.model_name)
        metrics.initialize_cache()
        metrics.set_request_ids(str(uuid.uuid4()))
        return Context(
            self.model_name,
            str(self.model_dir),
            self.manifest,
            batch_size,
            gpu_id,
            metrics=metrics,
            model_yaml_config=self.config,
        )

    def _load(self, handler: str) -> Any:
        """TorchServe's worker start: model dir as cwd and sys.path[0], import, entry point, initialize."""
        from ts_notebook.handler.load import import_handler_module, resolve_entry_point

        os.chdir(self.model_dir)
        sys.path.insert(0, str(self.model_dir))
        entry = resolve_entry_point(handler, import_handler_module(handler, self.model_dir))
        entry.initialize(self.context)
        return entry

    def request(
        self, body: bytes | str, content_type: str | None = None, headers: dict[str, str] | None = None
    ) -> Request:
        """One HTTP request shaped as the handler receives it (see ``make_request``)."""
        return make_request(body, content_type, headers)

    def handle(self, requests: list[Request]) -> list[Answer]:
        """Run one batch through the handler; one Answer per request, in order. Never raises for the
        handler's own errors: they become TorchServe's answers (and a log record with the traceback)."""
        from ts_notebook.handler.context import RequestProcessor
        from ts_notebook.handler.util import PredictionException

        if not requests:
            return []
        with self._lock:
            ctx = self.context
            ctx.request_ids = {i: r.request_id for i, r in enumerate(requests)}
            ctx.request_processor = [RequestProcessor(r.headers) for r in requests]
            ctx.metrics.set_request_ids(ctx.request_ids)
            try:
                ret = self._handle([r.row for r in requests], ctx)
            except PredictionException as exc:
                return [_error(exc.error_code, exc.message)] * len(requests)
            except Exception:
                log.exception("Invoking custom service failed.")
                return [_error(503, "Prediction failed")] * len(requests)
            return self._answers(ret, len(requests))

    def _answers(self, ret: Any, n: int) -> list[Answer]:
        if not isinstance(ret, list):
            return [_error(503, "Invalid model predict output")] * n
        if len(ret) != n:
            return [_error(503, "number of batch response mismatched")] * n
        out = []
        for i, value in enumerate(ret):
            try:
                body, _ = encode_output(value)  # TorchServe sends only a Content-Type the handler set
            except TypeError as exc:
                return [_error(503, str(exc))] * n
            status, _ = self.context.get_response_status(i)
            headers = dict(self.context.get_response_headers(i))
            ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
            out.append(Answer(status, body, ctype, headers))
        return out

    def predict(self, body: bytes | str, content_type: str | None = None) -> Answer:
        """One request alone (a batch of one)."""
        return self.handle([self.request(body, content_type)])[0]
