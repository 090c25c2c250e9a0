"""The backend's info record (``backend.json``): one schema, written by the server, read by the launcher.

The server writes it only once every port listens, so its presence means "serving". It is written
atomically (a partial file renamed into place), so a reader never sees half of it. Readers accept
keys they do not know (a newer backend may add some) and name the missing ones when a record is
too old or damaged to use.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ts_notebook.errors import BackendError
from ts_notebook.jsontypes import JsonObject

if TYPE_CHECKING:  # the backend process writes records but never opens a client
    from ts_notebook.client import Client

INFO_FILE = "backend.json"
_REQUIRED = ("pid", "inference_address", "management_address", "metrics_address")


@dataclass(frozen=True)
class BackendInfo:
    """A running backend: where it listens, how to authenticate, what it serves from."""

    pid: int
    run_dir: Path
    inference_address: str
    management_address: str
    metrics_address: str
    key_file: Path | None = None
    model_store: str | None = None
    started: float | None = None
    version: str | None = None
    # start-up models that did not load: "NAME=PATH" (as given) -> the cause
    failed_models: dict[str, str] = field(default_factory=dict)
    engine: str = "embedded"  # or "torchserve": real TorchServe started by %ts_serve start --torchserve
    log_dir: str | None = None  # TorchServe's logs (ts_log.log, model_log.log)

    @property
    def embedded(self) -> bool:
        return self.engine == "embedded"

    def to_json(self) -> str:
        """The record as ``backend.json`` holds it."""
        data = {
            "pid": self.pid,
            "run_dir": str(self.run_dir),
            "inference_address": self.inference_address,
            "management_address": self.management_address,
            "metrics_address": self.metrics_address,
            "key_file": str(self.key_file) if self.key_file else None,
            "model_store": self.model_store,
            "started": self.started,
            "version": self.version,
            "failed_models": self.failed_models,
            "engine": self.engine,
            "log_dir": self.log_dir,
        }
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, run_dir: Path) -> BackendInfo:
        """Parse a record; unknown keys are ignored.

        Raises:
            BackendError: the text is not a JSON object or lacks a required key (named in the message).
        """
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise BackendError(f"{run_dir / INFO_FILE}: not JSON ({exc}); delete it and start again") from None
        if not isinstance(data, dict):
            raise BackendError(f"{run_dir / INFO_FILE}: expected a JSON object, got {type(data).__name__}")
        missing = [key for key in _REQUIRED if key not in data]
        if missing:
            raise BackendError(
                f"{run_dir / INFO_FILE} lacks {', '.join(missing)}: it was written by another version of "
                "ts_notebook or damaged; stop that backend and start again"
            )
        return cls(
            pid=int(data["pid"]),
            run_dir=Path(data.get("run_dir") or run_dir),
            inference_address=str(data["inference_address"]),
            management_address=str(data["management_address"]),
            metrics_address=str(data["metrics_address"]),
            key_file=Path(data["key_file"]) if data.get("key_file") else None,
            model_store=data.get("model_store"),
            started=data.get("started"),
            version=data.get("version"),
            failed_models={str(k): str(v) for k, v in (data.get("failed_models") or {}).items()},
            engine=str(data.get("engine") or "embedded"),
            log_dir=data.get("log_dir"),
        )

    @classmethod
    def read(cls, run_dir: Path) -> BackendInfo | None:
        """The record in ``run_dir``, or None when there is none (the backend is not serving).

        Raises:
            BackendError: a record exists but cannot be used (see ``from_json``).
        """
        try:
            text = (run_dir / INFO_FILE).read_text()
        except OSError:
            return None
        return cls.from_json(text, run_dir)

    def write(self) -> Path:
        """Write the record atomically into ``run_dir`` (private to this user)."""
        target = self.run_dir / INFO_FILE
        partial = self.run_dir / f".{INFO_FILE}.partial"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.to_json())
        partial.replace(target)
        return target

    def remove(self) -> None:
        (self.run_dir / INFO_FILE).unlink(missing_ok=True)

    def keys(self) -> dict[str, str | None]:
        """The inference and management tokens (None each when token authorization is off)."""
        data: JsonObject = {}
        if self.key_file is not None and self.key_file.is_file():
            data = json.loads(self.key_file.read_text())
        return {
            "inference": (data.get("inference") or {}).get("key"),
            "management": (data.get("management") or {}).get("key"),
        }

    def client(self) -> Client:
        from ts_notebook.client import Client

        keys = self.keys()
        return Client(
            self.inference_address,
            self.management_address,
            self.metrics_address,
            inference_key=keys["inference"],
            management_key=keys["management"],
        )
