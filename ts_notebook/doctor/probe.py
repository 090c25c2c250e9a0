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
from pathlib import Path
from typing import Any

MARK = "TS_NOTEBOOK_PROBE "


class InitializeTimeout(Exception):
    pass


def _weights(model_dir: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """What the serialized file is: torchscript, a state_dict, a pickled module (and its class), other."""
    name = (manifest.get("model") or {}).get("serializedFile")
    if not name or not (model_dir / name).is_file():
        return {"kind": "none" if not name else "missing", "file": name}
    path = model_dir / name
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            if any(n.endswith("/constants.pkl") or "/code/" in n for n in zf.namelist()):
                return {"kind": "torchscript", "file": name}
    try:
        import torch

        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses classes: the message names the one it met
        text = str(exc)
        marker = "GLOBAL "
        cls = text.split(marker, 1)[1].split()[0] if marker in text else None
        return {"kind": "pickled" if cls else "unreadable", "file": name, "class": cls, "error": text[:600]}
    if isinstance(loaded, dict):
        return {"kind": "state_dict", "file": name, "keys": len(loaded)}
    return {"kind": type(loaded).__name__, "file": name}


def _alarm(_signum: int, _frame: Any) -> None:
    raise InitializeTimeout


def probe(model_dir: Path, limit: float) -> dict[str, Any]:
    from ts_notebook.handler.compat import install
    from ts_notebook.handler.context import Context
    from ts_notebook.handler.load import import_handler_module, locate, resolve_entry_point

    manifest_path = model_dir / "MAR-INF" / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"model": {}}
    model = manifest.get("model") or {}
    yaml_config: dict[str, Any] = {}
    if model.get("configFile") and (model_dir / model["configFile"]).is_file():
        import yaml

        yaml_config = yaml.safe_load((model_dir / model["configFile"]).read_text()) or {}
    os.chdir(model_dir)
    sys.path.insert(0, str(model_dir))
    install()
    out: dict[str, Any] = {"weights": _weights(model_dir, manifest), "stage": "import"}
    started = time.perf_counter()
    try:
        handler = str(model.get("handler") or "")
        entry = resolve_entry_point(handler, import_handler_module(handler, model_dir))
        out["stage"] = "initialize"
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
        out["initialize_seconds"] = time.perf_counter() - started
        instance = entry.instance
        out["mapping_none"] = instance is not None and hasattr(instance, "mapping") and instance.mapping is None
        out["outcome"] = "ok"
    except InitializeTimeout:
        out |= {"outcome": "timeout", "initialize_seconds": time.perf_counter() - started}
    except BaseException as exc:
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        where = locate(cause, (model_dir,))
        out |= {
            "outcome": "error",
            "type": type(cause).__name__,
            "message": str(cause)[:2000],
            "wrapper": str(exc)[:1000],
            "traceback": "".join(traceback.format_exception(cause))[-6000:],
            "where": [where.file, where.line, where.code] if where else None,
            "missing_module": getattr(cause, "name", None) if isinstance(cause, ImportError) else None,
            "initialize_seconds": time.perf_counter() - started,
        }
    return out


def main() -> None:
    model_dir, limit = Path(sys.argv[1]).resolve(), float(sys.argv[2])
    result = probe(model_dir, limit)
    sys.stdout.flush()
    print(MARK + json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main()
