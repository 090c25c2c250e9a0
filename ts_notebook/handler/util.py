"""TorchServe's handler helpers (``ts.utils.util``): label mapping and the prediction exception."""

from __future__ import annotations

import inspect
import itertools
import json
import logging
from pathlib import Path
from types import ModuleType
from typing import Any, TypedDict

logger = logging.getLogger(__name__)


class PredictionException(Exception):
    """Raise from a handler to answer with a chosen HTTP status instead of 503."""

    def __init__(self, message: str, error_code: int = 500) -> None:
        self.message = message
        self.error_code = error_code
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.message} : {self.error_code}"


def list_classes_from_module(module: ModuleType, parent_class: type | None = None) -> list[type]:
    """Classes defined in ``module`` itself (imported ones do not count), optionally of one kind."""
    homes = {module.__name__, getattr(module, "__ts_notebook_target__", None)}
    classes = [c for _, c in inspect.getmembers(module, inspect.isclass) if c.__module__ in homes]
    return [c for c in classes if parent_class is None or issubclass(c, parent_class)]


def load_label_mapping(mapping_file_path: str) -> dict[str, str] | None:
    """Read ``index_to_name.json`` (``{"0": "cat"}``, ``{"0": ["n0", "cat"]}`` or
    ``{"object_type_names": [...]}``); None with a warning when the file is missing."""
    path = Path(mapping_file_path)
    if not path.is_file():
        logger.warning("%r is missing. Inference output will not include class name.", mapping_file_path)
        return None
    mapping = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(mapping, dict):
        raise Exception('index->name JSON mapping should be in "class": "label" format.')
    names = mapping.get("object_type_names")
    if isinstance(names, list):
        return {str(i): v for i, v in enumerate(names)}
    out: dict[str, str] = {}
    for key, value in mapping.items():
        label = value[-1] if isinstance(value, list) else value
        if not isinstance(label, str):
            raise Exception("labels in index->name mapping must be either str or List[str]")
        out[key] = label
    return out


def map_class_to_label(probs: list[Any], mapping: dict[str, str] | None = None, lbl_classes: Any = None) -> list[Any]:
    """``[[p0, p1, ...], ...]`` -> ``[{label: p, ...}, ...]`` using the mapping (or the class index)."""
    if not isinstance(probs, list):
        raise Exception("Convert classes to list before doing mapping")
    if mapping is not None and not isinstance(mapping, dict):
        raise Exception("Mapping must be a dict")
    if lbl_classes is None:
        lbl_classes = itertools.repeat(range(len(probs[0])), len(probs))
    return [
        {(mapping[str(c)] if mapping is not None else str(c)): p for c, p in zip(classes, row, strict=False)}
        for classes, row in zip(lbl_classes, probs, strict=False)
    ]


class IntermediateChunk(TypedDict):
    """One ``send_intermediate_predict_response`` call: a dict, since a worker's sink reads it by key."""

    ret: list[Any]
    req_id_map: dict[int, str]
    message: str
    code: int


def send_intermediate_predict_response(
    ret: list[Any], req_id_map: dict[int, str], message: str, code: int, context: Any
) -> None:
    """Stream a partial answer before ``handle`` returns (TorchServe's streaming API).

    Our runners give the context an ``intermediate_responses`` list; each call is appended there,
    so a dry run shows every chunk and a worker can forward them.
    """
    sink = getattr(context, "intermediate_responses", None)
    if sink is None:
        raise RuntimeError("send_intermediate_predict_response needs a context from a ts_notebook runner or TorchServe")
    chunk: IntermediateChunk = {"ret": ret, "req_id_map": dict(req_id_map), "message": message, "code": code}
    sink.append(chunk)


def get_yaml_config(yaml_file_path: str) -> Any:
    """A YAML file's contents (safe loading: no Python objects)."""
    import yaml

    with open(yaml_file_path, encoding="utf-8") as file:
        return yaml.safe_load(file)


def import_class(class_name: str, module_prefix: str | None = None) -> Any:
    """``"pkg.mod.Class"`` (or ``"mod.Class"`` under ``module_prefix``) -> the class; ImportError naming
    what is missing."""
    import importlib

    if not class_name:
        raise ImportError("class name is not defined")
    module_name, _, name = class_name.rpartition(".")
    if module_prefix:
        module = importlib.import_module(f"{module_prefix}.{module_name}" if module_name else module_prefix)
    elif module_name:
        module = importlib.import_module(module_name)
    else:
        raise ImportError("module name is not defined.")
    found = getattr(module, name, None)
    if found is None:
        raise ImportError(f"class:{name} not found in module:{module_name}.")
    return found


PT2_BACKENDS = (
    "eager", "aot_eager", "inductor", "nvfuser", "aot_nvfuser", "aot_cudagraphs", "ofi", "fx2trt", "onnxrt",
    "ipex", "torchxla_trace_once", "openvino", "tensorrt", "hpu_backend",
)  # fmt: skip


def check_valid_pt2_backend(backend: str) -> bool:
    """True for a torch.compile backend TorchServe knows; a warning otherwise."""
    if backend in PT2_BACKENDS:
        return True
    logger.warning("%s is not a supported backend", backend)
    return False


def timed(func: Any) -> Any:
    """Add ``ts_handler_<method>`` (ms) to the metrics when model-config.yaml says ``handler: profile: true``."""
    import functools
    import time

    @functools.wraps(func)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        context: Any = getattr(self, "context", None)
        handler_config = (getattr(context, "model_yaml_config", None) or {}).get("handler") or {}
        if not handler_config.get("profile"):
            return func(self, *args, **kwargs)
        start = time.perf_counter()
        result = func(self, *args, **kwargs)
        context.metrics.add_time("ts_handler_" + func.__name__, (time.perf_counter() - start) * 1000)
        return result

    return wrapper
