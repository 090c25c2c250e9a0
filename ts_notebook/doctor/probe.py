"""Load a model the way a TorchServe worker does, in this (fresh) process, and say what happened.

``python -m ts_notebook.doctor.probe MODEL_DIR TIME_LIMIT`` chdirs into the model dir, puts it first on
``sys.path``, serves ``import ts`` (unless torchserve is installed), imports the handler, resolves its
entry point, runs ``initialize`` under a time limit, and prints one JSON object as its last line:
the outcome, the exception (type, message, traceback, the handler's line), how long initialize took,
what the serialized file holds, and whether the handler's label map stayed None.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ts_notebook.archive.folder import folder_manifest, model_config
from ts_notebook.doctor.findings import Place
from ts_notebook.jsontypes import JsonObject

MARK = "TS_NOTEBOOK_PROBE "


@dataclass(frozen=True)
class Weights:
    """What the serialized file holds: ``kind`` is none, missing, torchscript, state_dict, pickled
    (``cls`` names the class), unreadable (``error`` says why), the loaded object's type, or unknown."""

    kind: str = "unknown"
    file: str | None = None
    cls: str | None = None
    error: str = ""
    keys: int | None = None


@dataclass(frozen=True)
class ProbeResult:
    """What loading the model showed. ``outcome`` is ok, error or timeout; ``stage`` the one reached
    (import or initialize); for an error, the exception's type, message and traceback, the handler's
    line (``where``: full path, line, code) and the module an ImportError missed."""

    outcome: str
    stage: str = "import"
    weights: Weights = field(default_factory=Weights)
    initialize_seconds: float | None = None
    mapping_none: bool = False
    type: str = ""
    message: str = ""
    wrapper: str = ""
    traceback: str = ""
    where: Place | None = None
    missing_module: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str)

    @classmethod
    def from_json(cls, text: str) -> ProbeResult:
        """The line ``to_json`` wrote (in the probe's process, from this same module)."""
        data: JsonObject = json.loads(text)
        where = data.pop("where", None)
        weights = Weights(**data.pop("weights", None) or {})
        return cls(**data, weights=weights, where=Place(**where) if where else None)


class InitializeTimeout(Exception):
    pass


def _weights(model_dir: Path, manifest: JsonObject) -> Weights:
    """What the serialized file is: torchscript, a state_dict, a pickled module (and its class), other."""
    name = (manifest.get("model") or {}).get("serializedFile")
    if not name or not (model_dir / name).is_file():
        return Weights("none" if not name else "missing", name)
    path = model_dir / name
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            if any(n.endswith("/constants.pkl") or "/code/" in n for n in zf.namelist()):
                return Weights("torchscript", name)
    try:
        import torch

        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses classes: the message names the one it met
        text = str(exc)
        marker = "GLOBAL "
        cls = text.split(marker, 1)[1].split()[0] if marker in text else None
        return Weights("pickled" if cls else "unreadable", name, cls, text[:600])
    if isinstance(loaded, dict):
        return Weights("state_dict", name, keys=len(loaded))
    return Weights(type(loaded).__name__, name)


def _alarm(_signum: int, _frame: Any) -> None:
    raise InitializeTimeout


def probe(model_dir: Path, limit: float) -> ProbeResult:
    from ts_notebook.handler.compat import install
    from ts_notebook.handler.context import Context
    from ts_notebook.handler.load import import_handler_module, locate, resolve_entry_point

    manifest = folder_manifest(model_dir) or {"model": {}}
    model = manifest.get("model") or {}
    yaml_config = model_config(model_dir, manifest)
    os.chdir(model_dir)
    sys.path.insert(0, str(model_dir))
    install()
    weights, stage = _weights(model_dir, manifest), "import"
    started = time.perf_counter()
    try:
        handler = str(model.get("handler") or "")
        entry = resolve_entry_point(handler, import_handler_module(handler, model_dir))
        stage = "initialize"
        context = Context(
            str(model.get("modelName") or "model"), str(model_dir), manifest, 1, None, model_yaml_config=yaml_config
        )
        signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, limit)
        started = time.perf_counter()
        try:
            entry.initialize(context)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        took = time.perf_counter() - started
        instance = entry.instance
        mapping_none = instance is not None and hasattr(instance, "mapping") and instance.mapping is None
        return ProbeResult("ok", stage, weights, took, mapping_none)
    except InitializeTimeout:
        return ProbeResult("timeout", stage, weights, time.perf_counter() - started)
    except BaseException as exc:
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        where = locate(cause, (model_dir,))
        return ProbeResult(
            "error",
            stage,
            weights,
            time.perf_counter() - started,
            type=type(cause).__name__,
            message=str(cause)[:2000],
            wrapper=str(exc)[:1000],
            traceback="".join(traceback.format_exception(cause))[-6000:],
            where=Place(where.file, where.line, where.code) if where else None,
            missing_module=getattr(cause, "name", None) if isinstance(cause, ImportError) else None,
        )


def main() -> None:
    model_dir, limit = Path(sys.argv[1]).resolve(), float(sys.argv[2])
    result = probe(model_dir, limit)
    sys.stdout.flush()
    print(MARK + result.to_json(), flush=True)


if __name__ == "__main__":
    main()
