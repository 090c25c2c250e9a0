"""Small, real model inputs for the tests: a 4->8->3 MLP as an eager model and as TorchScript,
handlers of each entry-point kind, a config, labels and an extra folder."""

from __future__ import annotations

from pathlib import Path

MODEL_PY = """\
import torch
from torch import nn


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))
"""

HANDLER_PY = '''\
import json

import torch
from ts.torch_handler.base_handler import BaseHandler


class TinyHandler(BaseHandler):
    """Takes {"input": [4 floats]} per request and returns the 3 logits, rounded."""

    def preprocess(self, data):
        rows = []
        for row in data:
            payload = row.get("body") if row.get("body") is not None else row.get("data")
            if isinstance(payload, (bytes, bytearray)):
                payload = json.loads(payload)
            rows.append(payload["input"])
        return torch.tensor(rows, dtype=torch.float32)

    def postprocess(self, data):
        return [[round(v, 5) for v in row] for row in data.tolist()]
'''

FUNC_HANDLER_PY = """\
def my_entry(data, context):
    if data is None:
        return None
    return [{"echo": len(data)} for _ in data]


def handle(data, context):
    return my_entry(data, context)
"""

CONFIG_YAML = "minWorkers: 1\nmaxWorkers: 1\nbatchSize: 1\nresponseTimeout: 30\nhandler:\n  top_k: 2\n"


def tiny_model():  # type: ignore[no-untyped-def]
    """The TinyNet of MODEL_PY with fixed weights (imported here so tests need not write it)."""
    import torch
    from torch import nn

    class TinyNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(4, 8)
            self.fc2 = nn.Linear(8, 3)

        def forward(self, x):  # type: ignore[no-untyped-def]
            return self.fc2(torch.relu(self.fc1(x)))

    torch.manual_seed(0)
    return TinyNet().eval()


def write_assets(root: Path) -> Path:
    """Write every input file under ``root`` and return it."""
    import torch

    root.mkdir(parents=True, exist_ok=True)
    (root / "model.py").write_text(MODEL_PY)
    (root / "handler.py").write_text(HANDLER_PY)
    (root / "func_handler.py").write_text(FUNC_HANDLER_PY)
    model = tiny_model()
    torch.save(model.state_dict(), root / "tiny_state.pth")
    torch.jit.script(model).save(str(root / "tiny_ts.pt"))
    (root / "index_to_name.json").write_text('{"0": "cat", "1": "dog", "2": "bird"}')
    (root / "notes.txt").write_text("notes\n")
    (root / "model-config.yaml").write_text(CONFIG_YAML)
    (root / "requirements.txt").write_text("# nothing extra needed\n")
    extra = root / "extra_dir"
    (extra / "sub").mkdir(parents=True, exist_ok=True)
    (extra / "a.txt").write_text("a\n")
    (extra / "sub" / "b.txt").write_text("b\n")
    (extra / ".hidden_file").write_text("kept, as the reference archiver keeps it\n")
    (extra / "__pycache__").mkdir(exist_ok=True)
    (extra / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (extra / ".git").mkdir(exist_ok=True)
    (extra / ".git" / "HEAD").write_text("ref\n")
    return root


def build_tiny(assets: Path, export_path: Path, name: str = "tiny", handler: Path | None = None, **kw: object):  # type: ignore[no-untyped-def]
    """The eager TinyNet archive most tests serve: model.py + tiny_state.pth + a handler (handler.py)."""
    from ts_notebook.archive import build_archive

    return build_archive(
        name,
        "1.0",
        str(handler or assets / "handler.py"),
        model_file=str(assets / "model.py"),
        serialized_file=str(assets / "tiny_state.pth"),
        export_path=export_path,
        **kw,  # type: ignore[arg-type]
    )
