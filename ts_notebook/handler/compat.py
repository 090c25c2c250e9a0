"""The ``ts`` compatibility layer: handlers written for TorchServe import ``ts.context``,
``ts.torch_handler.base_handler``, ``ts.utils.util`` and ``ts.handler_utils.utils``; when the
``torchserve`` package is not installed we answer those imports with our own classes.

The names are served by an import hook that is active only where we load and run handlers (the
dry run, our workers), never as a globally installed ``ts`` package.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType

_METRIC_TYPES = ("dimension", "metric_type_enum", "unit", "metric_cache_errors", "caching_metric", "metric_abstract")
_ENVELOPES = ("base", "body", "json", "kserve", "kservev2")
_METRIC_CACHES = ("metric_cache_abstract", "metric_cache_yaml_impl", "metrics_store")
# alias -> module whose public names it re-exports (None: an empty package)
ALIASES: dict[str, str | None] = {
    "ts": None,
    "ts.context": "ts_notebook.handler.context",
    "ts.torch_handler": None,
    "ts.torch_handler.base_handler": "ts_notebook.handler.base_handler",
    "ts.utils": None,
    "ts.utils.util": "ts_notebook.handler.util",
    "ts.handler_utils": None,
    "ts.handler_utils.utils": "ts_notebook.handler.util",
    "ts.handler_utils.timer": "ts_notebook.handler.util",
    "ts.handler_utils.micro_batching": "ts_notebook.handler.micro_batching",
    "ts.torch_handler.request_envelope": None,
    **{f"ts.torch_handler.request_envelope.{m}": "ts_notebook.handler.envelopes" for m in _ENVELOPES},
    "ts.metrics": None,
    **{f"ts.metrics.{m}": "ts_notebook.handler.metrics_api" for m in _METRIC_TYPES},
    **{f"ts.metrics.{m}": "ts_notebook.handler.metrics_cache" for m in _METRIC_CACHES},
}
# TorchServe's other built-in handlers, and what they need beyond torch.
BUILTINS_NEEDING: dict[str, str] = {
    "image_classifier": "torchvision",
    "object_detector": "torchvision",
    "image_segmenter": "torchvision",
    "vision_handler": "torchvision",
    "dali_image_classifier": "nvidia-dali and torchvision",
    "text_classifier": "torchtext and captum",
    "text_handler": "torchtext",
    "vllm_handler": "vllm",
    "trt_llm_handler": "tensorrt_llm",
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str | None, missing: str | None = None) -> None:
        self._target = target
        self._missing = missing

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        if self._missing is not None:
            name = module.__name__.rsplit(".", 1)[-1]
            raise ModuleNotFoundError(
                f"TorchServe's built-in handler {name!r} needs {self._missing}, and the torchserve package is not "
                f"installed here. Install both (pip install torchserve==0.12.0 and {self._missing}) or write the "
                "handler yourself on top of ts.torch_handler.base_handler.BaseHandler.",
                name=self._missing.split()[0],  # the missing dependency, not the handler module itself
            )
        if self._target is not None:
            target = importlib.import_module(self._target)
            module.__dict__.update({k: v for k, v in vars(target).items() if not k.startswith("__")})
            # Classes keep their home module's name; entry-point rules count them as defined here.
            module.__dict__["__ts_notebook_target__"] = self._target


class TsCompatFinder(importlib.abc.MetaPathFinder):
    """Answers ``import ts...`` with ts_notebook's compatible implementations."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname in ALIASES:
            is_pkg = ALIASES[fullname] is None
            return importlib.machinery.ModuleSpec(fullname, _AliasLoader(ALIASES[fullname]), is_package=is_pkg)
        prefix = "ts.torch_handler."
        if fullname.startswith(prefix) and fullname[len(prefix) :] in BUILTINS_NEEDING:
            return importlib.machinery.ModuleSpec(
                fullname, _AliasLoader(None, BUILTINS_NEEDING[fullname[len(prefix) :]])
            )
        return None


def real_torchserve_installed() -> bool:
    """True when the real ``torchserve`` package provides ``ts`` (then we use it as it is)."""
    if any(isinstance(f, TsCompatFinder) for f in sys.meta_path):
        return False
    try:
        return importlib.util.find_spec("ts.torch_handler.base_handler") is not None
    except (ImportError, ValueError):
        return False


def install() -> None:
    """Serve ``ts`` for the rest of this process (worker processes: our own sandbox)."""
    if not real_torchserve_installed() and not any(isinstance(f, TsCompatFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, TsCompatFinder())


@contextmanager
def ts_compat() -> Iterator[None]:
    """Serve ``ts`` while the block runs, then forget it again (the notebook kernel's dry run)."""
    if real_torchserve_installed() or any(isinstance(f, TsCompatFinder) for f in sys.meta_path):
        yield
        return
    finder = TsCompatFinder()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in [n for n in sys.modules if n == "ts" or n.startswith("ts.")]:
            del sys.modules[name]
