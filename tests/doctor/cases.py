"""One broken model per cause the doctor knows, and its fixed twin, built as real .mar archives
(zip files with MAR-INF/MANIFEST.json, as torch-model-archiver writes them)."""

from __future__ import annotations

import io
import json
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

PLAIN = "def handle(data, context):\n    return [1 for _ in data] if data else None\n"
MODEL = """\
import torch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x)
"""
BASE = "from ts.torch_handler.base_handler import BaseHandler\n\n\nclass Handler(BaseHandler):\n    pass\n"


@dataclass
class Case:
    """A model's files; ``handler`` is the manifest's handler, the rest of the manifest as given."""

    name: str
    files: dict[str, bytes | str]
    handler: str = "handler.py"
    manifest: dict[str, str] = field(default_factory=dict)

    def build(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        model = {"modelName": self.name, "modelVersion": "1.0", "handler": self.handler, **self.manifest}
        manifest = {
            "createdOn": "01/12/2026 00:00:00",
            "runtime": "python",
            "model": model,
            "archiverVersion": "0.12.0",
        }
        path = folder / f"{self.name}.mar"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("MAR-INF/MANIFEST.json", json.dumps(manifest, indent=2))
            for name, content in self.files.items():
                zf.writestr(name, content)
        return path


def _weights(kind: str) -> bytes:
    import torch

    torch.manual_seed(0)
    namespace: dict[str, object] = {}
    exec(MODEL, namespace)  # the class as it would live in a script's __main__
    net = namespace["Net"]()  # type: ignore[operator]
    buffer = io.BytesIO()
    if kind == "state_dict":
        torch.save(net.state_dict(), buffer)
    elif kind == "torchscript":
        torch.jit.save(torch.jit.trace(net, torch.zeros(1, 4)), buffer)
    elif kind == "wrong_shape":  # Net's names, Linear(5, 3)'s shapes
        torch.save({f"fc.{k}": v for k, v in torch.nn.Linear(5, 3).state_dict().items()}, buffer)
    else:  # a pickled whole model whose class is __main__.Net, as a training script saves it
        main = sys.modules["__main__"]
        cls = type(net)
        cls.__module__, cls.__qualname__ = "__main__", "Net"
        main.Net = cls  # type: ignore[attr-defined]
        try:
            torch.save(net, buffer)
        finally:
            del main.Net  # type: ignore[attr-defined]
    return buffer.getvalue()


HELPER_USER = "import helper\n\n\ndef handle(data, context):\n    return [helper.ONE for _ in data] if data else None\n"
OPENER = (
    "import os\n\n\nclass Reader:\n    def initialize(self, context):\n"
    "        path = os.path.join(context.system_properties['model_dir'], 'vocab.txt')\n"
    "        self.vocab = open(path).read().split()\n\n    def handle(self, data, context):\n"
    "        return [len(self.vocab) for _ in data]\n"
)
ABSOLUTE = OPENER.replace("os.path.join(context.system_properties['model_dir'], 'vocab.txt')", "'/home/dev/vocab.txt'")
TWO = """\
class A:
    def initialize(self, context):
        pass

    def handle(self, data, context):
        return data


class B:
    pass
"""
SLOW = """\
import time


def handle(data, context):
    if data is None:
        time.sleep(8)
        return None
    return [1 for _ in data]
"""
OOM = """\
def handle(data, context):
    if data is None:
        raise MemoryError('cannot allocate the weights')
    return data
"""


def _code_pairs() -> dict[str, tuple[Case, Case, int]]:
    return {
        "missing_helper": (
            Case("helperless", {"handler.py": HELPER_USER}),
            Case("helperless", {"handler.py": HELPER_USER, "helper.py": "ONE = 1\n"}),
            2,
        ),
        "missing_package": (
            Case(
                "pkgless",
                {"handler.py": "import tsnb_not_a_package\n" + PLAIN, "requirements.txt": "tsnb-not-a-package==1.0\n"},
            ),
            Case("pkgless", {"handler.py": PLAIN}),
            3,
        ),
        "missing_file": (
            Case("vocabless", {"handler.py": OPENER}),
            Case("vocabless", {"handler.py": OPENER, "vocab.txt": "a b c\n"}),
            4,
        ),
        "absolute_path": (
            Case("abspath", {"handler.py": ABSOLUTE}),
            Case("abspath", {"handler.py": OPENER, "vocab.txt": "a b\n"}),
            4,
        ),
        "two_classes": (
            Case("twoclass", {"handler.py": TWO}),
            Case("twoclass", {"handler.py": TWO.split("\n\n\nclass B")[0] + "\n"}),
            5,
        ),
    }


def _packaging_pairs() -> dict[str, tuple[Case, Case, int]]:
    return {
        "no_model_file": (
            Case(
                "nomodelfile",
                {"handler.py": BASE, "weights.pt": _weights("state_dict")},
                manifest={"serializedFile": "weights.pt"},
            ),
            Case(
                "nomodelfile",
                {"handler.py": BASE, "weights.pt": _weights("state_dict"), "model.py": MODEL},
                manifest={"serializedFile": "weights.pt", "modelFile": "model.py"},
            ),
            6,
        ),
        "pickled_model": (
            Case(
                "pickled",
                {"handler.py": BASE, "weights.pt": _weights("pickled")},
                manifest={"serializedFile": "weights.pt"},
            ),
            Case(
                "pickled",
                {"handler.py": BASE, "weights.pt": _weights("torchscript")},
                manifest={"serializedFile": "weights.pt"},
            ),
            6,
        ),
        "wrong_shapes": (
            Case(
                "shapes",
                {"handler.py": BASE, "weights.pt": _weights("wrong_shape"), "model.py": MODEL},
                manifest={"serializedFile": "weights.pt", "modelFile": "model.py"},
            ),
            Case(
                "shapes",
                {"handler.py": BASE, "weights.pt": _weights("state_dict"), "model.py": MODEL},
                manifest={"serializedFile": "weights.pt", "modelFile": "model.py"},
            ),
            6,
        ),
    }


def _config_pairs() -> dict[str, tuple[Case, Case, int]]:
    return {
        "slow_initialize": (
            Case(
                "slowinit",
                {"handler.py": SLOW, "model-config.yaml": "startupTimeout: 3\n"},
                manifest={"configFile": "model-config.yaml"},
            ),
            Case(
                "slowinit",
                {"handler.py": SLOW, "model-config.yaml": "startupTimeout: 30\n"},
                manifest={"configFile": "model-config.yaml"},
            ),
            7,
        ),
        "config_typo": (
            Case(
                "typo",
                {"handler.py": PLAIN, "model-config.yaml": "batchsize: 4\nmaxBatchDelay: '100'\n"},
                manifest={"configFile": "model-config.yaml"},
            ),
            Case(
                "typo",
                {"handler.py": PLAIN, "model-config.yaml": "batchSize: 4\nmaxBatchDelay: 100\n"},
                manifest={"configFile": "model-config.yaml"},
            ),
            9,
        ),
        "gpu_on_cpu": (
            Case(
                "gpuonly",
                {"handler.py": PLAIN, "model-config.yaml": "deviceType: gpu\n"},
                manifest={"configFile": "model-config.yaml"},
            ),
            Case(
                "gpuonly",
                {"handler.py": PLAIN, "model-config.yaml": "deviceType: cpu\n"},
                manifest={"configFile": "model-config.yaml"},
            ),
            10,
        ),
        "out_of_memory": (Case("oominit", {"handler.py": OOM}), Case("oominit", {"handler.py": PLAIN}), 12),
    }


def pairs() -> dict[str, tuple[Case, Case, int]]:
    """cause name -> (broken, fixed, cause number)."""
    return {**_code_pairs(), **_packaging_pairs(), **_config_pairs()}
