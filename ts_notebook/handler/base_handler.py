"""A ``BaseHandler`` that behaves like TorchServe 0.12's: device from ``gpu_id``, an eager model
from ``modelFile`` + ``serializedFile`` or TorchScript from a ``.pt``, ``index_to_name.json``
labels, and preprocess -> inference -> postprocess inside ``handle``.

Used when the ``torchserve`` package is not installed; handlers import it as
``ts.torch_handler.base_handler.BaseHandler`` either way.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import time
from abc import ABC
from pathlib import Path
from typing import Any

from ts_notebook.handler.util import list_classes_from_module, load_label_mapping, timed
from ts_notebook.jsontypes import JsonObject

logger = logging.getLogger(__name__)
# torch.profiler exists in every torch we support; TorchServe's handlers test this name.
PROFILER_AVAILABLE = importlib.util.find_spec("torch") is not None
PROFILER_TRACES = "/tmp/pytorch_profiler"  # where TorchServe writes the traces (a folder per model)


class BaseHandler(ABC):  # noqa: B024 - abstract in TorchServe too, with every method defaulted
    """TorchServe's default handler contract; subclass it and override the stages you need."""

    def __init__(self) -> None:
        self.model: Any = None
        self.mapping: dict[str, str] | None = None
        self.device: Any = None
        self.initialized = False
        self.context: Any = None
        self.model_pt_path: str | None = None
        self.manifest: JsonObject | None = None
        self.map_location: str | None = None
        self.explain = False
        self.target = 0
        self.profiler_args: JsonObject = {}

    def initialize(self, context: Any) -> None:
        """Load the model named by the manifest onto the device chosen by ``gpu_id``."""
        import torch

        properties = context.system_properties
        gpu_id = properties.get("gpu_id")
        self.model_yaml_config = getattr(context, "model_yaml_config", {}) or {}
        if torch.cuda.is_available() and gpu_id is not None:
            self.map_location = "cuda"
            self.device = torch.device(f"cuda:{gpu_id}")
        elif torch.backends.mps.is_available() and gpu_id is not None:
            self.map_location = "mps"
            self.device = torch.device("mps")
        else:
            self.map_location = "cpu"
            self.device = torch.device("cpu")
        self.manifest = context.manifest
        model = (self.manifest or {}).get("model", {})
        model_dir = str(properties.get("model_dir"))
        if model.get("serializedFile"):
            self.model_pt_path = str(Path(model_dir) / model["serializedFile"])
        model_file = model.get("modelFile", "")
        if model_file:
            self.model = self._load_pickled_model(model_dir, model_file, self.model_pt_path)
            self.model.to(self.device)
            self.model.eval()
        elif self.model_pt_path and self.model_pt_path.endswith(".pt"):
            self.model = self._load_torchscript_model(self.model_pt_path)
            self.model.eval()
        else:
            raise RuntimeError(
                "No model weights could be loaded: BaseHandler needs a TorchScript .pt serializedFile or a "
                f"modelFile + serializedFile in the manifest (got serializedFile={model.get('serializedFile')!r}, "
                f"modelFile={model_file!r}). Override initialize() to load anything else."
            )
        self.mapping = load_label_mapping(str(Path(model_dir) / "index_to_name.json"))
        self.initialized = True

    def _load_torchscript_model(self, model_pt_path: str) -> Any:
        import torch

        return torch.jit.load(model_pt_path, map_location=self.device)  # type: ignore[no-untyped-call]

    def _load_pickled_model(self, model_dir: str, model_file: str, model_pt_path: str | None) -> Any:
        import torch

        if not (Path(model_dir) / model_file).is_file():
            raise RuntimeError("Missing the model.py file")
        module = importlib.import_module(model_file.split(".")[0])
        classes = list_classes_from_module(module)
        if len(classes) != 1:
            raise ValueError(f"Expected only one class as model definition. {classes}")
        model = classes[0]()
        if model_pt_path:
            state_dict = torch.load(model_pt_path, map_location=self.device)
            model.load_state_dict(state_dict)
        return model

    @timed
    def preprocess(self, data: Any) -> Any:
        """Default: the raw request list as a tensor (override it for real inputs)."""
        import torch

        return torch.as_tensor(data, device=self.device)

    @timed
    def inference(self, data: Any, *args: Any, **kwargs: Any) -> Any:
        import torch

        with torch.inference_mode():
            return self.model(data.to(self.device), *args, **kwargs)

    @timed
    def postprocess(self, data: Any) -> Any:
        return data.tolist()

    def handle(self, data: Any, context: Any) -> Any:
        """preprocess -> inference -> postprocess (or describe / explain), timing it as HandlerTime."""
        start = time.time()
        self.context = context
        if os.environ.get("ENABLE_TORCH_PROFILER"):
            self.manifest = self.manifest if self.manifest is not None else context.manifest
            output, _ = self._infer_with_profiler(data)
        elif self._is_describe():
            output = [self.describe_handle()]
        else:
            pre = self.preprocess(data)
            output = self.explain_handle(pre, data) if self._is_explain() else self.postprocess(self.inference(pre))
        context.metrics.add_time("HandlerTime", round((time.time() - start) * 1000, 2), None, "ms")
        return output

    def _infer_with_profiler(self, data: Any) -> tuple[Any, Any]:
        """The three stages under torch.profiler (CPU, and CUDA where there is one), each a named range;
        a TensorBoard trace under /tmp/pytorch_profiler/<model> unless ``profiler_args`` says otherwise."""
        import torch
        from torch.profiler import ProfilerActivity, profile, record_function

        args = self.profiler_args
        if not args:
            args["activities"] = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
            args["record_shapes"] = True
        if "on_trace_ready" not in args:
            name = ((self.manifest or {}).get("model") or {}).get("modelName", "")
            args["on_trace_ready"] = torch.profiler.tensorboard_trace_handler(str(Path(PROFILER_TRACES) / name))
        with profile(**args) as prof:
            with record_function("preprocess"):
                pre = self.preprocess(data)
            if self._is_explain():
                with record_function("explain"):
                    output = self.explain_handle(pre, data)
            else:
                with record_function("inference"):
                    output = self.inference(pre)
                with record_function("postprocess"):
                    output = self.postprocess(output)
        logger.info(prof.key_averages().table(sort_by="cpu_time_total", row_limit=10))
        return output, prof

    def explain_handle(self, data_preprocess: Any, raw_data: Any) -> Any:
        row = raw_data[0]
        inputs = target = None
        if isinstance(row, dict):
            inputs = row.get("data") or row.get("body")
            target = row.get("target") or 0
        return self.get_insights(data_preprocess, inputs, target or 0)

    def get_insights(self, tensor_data: Any, raw_data: Any, target: Any) -> Any:
        raise NotImplementedError("this handler has no explanations: override get_insights()")

    def _is_explain(self) -> bool:
        if self.context is not None and self.context.get_request_header(0, "explain") == "True":
            self.explain = True
            return True
        return False

    def _is_describe(self) -> bool:
        return self.context is not None and self.context.get_request_header(0, "describe") == "True"

    def describe_handle(self) -> Any:
        return None

    def get_device(self) -> Any:
        return self.device
