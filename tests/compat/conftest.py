"""Session fixtures for the compatibility suite: the reference venv, its real archiver, a real TorchServe,
and a tiny model with its handler to archive and serve.

The reference venv (torch, torchserve 0.12.0, torch-model-archiver 0.12.0, pyyaml) is named by the
`TS_REF_VENV` environment variable; without it every test that needs it is skipped.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType

import pytest

from .torchserve import TorchServe

ArchiverArg = str | os.PathLike[str]
Archiver = Callable[..., "subprocess.CompletedProcess[str]"]

_VENV_HINT = "create it with `make compat-venv` and set TS_REF_VENV to its path"

MODEL_PY = '''\
"""Tiny 4 -> 8 -> 3 MLP: the only class here, as TorchServe's model-file loader requires."""
import torch
from torch import nn


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))
'''

HANDLER_PY = '''\
"""JSON {"input": [4 floats]} in, 3 floats rounded to 5 decimals out; one class, as TorchServe requires."""
import json

import torch
from ts.torch_handler.base_handler import BaseHandler


class TinyHandler(BaseHandler):
    def preprocess(self, data):
        rows = []
        for request in data:
            payload = request.get("body")
            if payload is None:
                payload = request.get("data")
            if isinstance(payload, (bytes, bytearray)):  # not decoded: a non-JSON content type
                payload = json.loads(payload)
            rows.append(payload["input"])
        return torch.tensor(rows, dtype=torch.float32)

    def postprocess(self, data):
        return [[round(value, 5) for value in row] for row in data.tolist()]
'''

MODEL_CONFIG_YAML = "minWorkers: 1\nmaxWorkers: 1\nbatchSize: 1\nresponseTimeout: 30\n"
INDEX_TO_NAME = {"0": "cat", "1": "dog", "2": "bird"}


def import_file(path: Path, name: str) -> ModuleType:
    """Import a source file as module `name` (registered in sys.modules: TorchScript reads its source)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _reference_env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="session")
def ts_ref_venv() -> Path:
    """The reference venv from `TS_REF_VENV`; skips the test if it is unset or has no `bin/torchserve`."""
    raw = os.environ.get("TS_REF_VENV")
    if not raw:
        pytest.skip(f"TS_REF_VENV is not set: {_VENV_HINT}")
    venv = Path(raw)
    if not (venv / "bin" / "torchserve").is_file():
        pytest.skip(f"TS_REF_VENV={raw} has no bin/torchserve: {_VENV_HINT}")
    return venv


@pytest.fixture(scope="session")
def real_archiver(ts_ref_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Archiver:
    """Callable `(*args, cwd=None, timeout=300) -> CompletedProcess[str]` running the real archiver.

    Arguments may be strings, paths or sequences of them (flattened). Output is captured as text; a
    non-zero exit is returned, never raised. Each call stages in its own TMPDIR, because the archiver
    stages in `$TMPDIR/<model-name>` and leaves it behind on failure.
    """
    exe = ts_ref_venv / "bin" / "torch-model-archiver"
    if not exe.is_file():
        pytest.skip(f"TS_REF_VENV={ts_ref_venv} has no bin/torch-model-archiver: {_VENV_HINT}")
    staging_root = tmp_path_factory.mktemp("archiver-tmp")

    def run(*args: ArchiverArg | Sequence[ArchiverArg], cwd: ArchiverArg | None = None,
            timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        argv = [str(exe)]
        for arg in args:
            argv += [os.fspath(a) for a in arg] if isinstance(arg, list | tuple) else [os.fspath(arg)]
        env = _reference_env(ts_ref_venv) | {"TMPDIR": tempfile.mkdtemp(dir=staging_root)}
        return subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout, check=False)

    return run


@pytest.fixture(scope="session")
def torchserve(ts_ref_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TorchServe]:
    """A started TorchServe shared by the session (a start costs seconds), stopped at the end."""
    with TorchServe(ts_ref_venv, root=tmp_path_factory.mktemp("torchserve")) as server:
        yield server


@pytest.fixture(scope="session")
def model_assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with model.py, tiny_state.pth, tiny_ts.pt, handler.py, index_to_name.json,
    model-config.yaml and extra_dir/{a.txt, sub/b.txt}; weights come from seed 0.
    """
    torch = pytest.importorskip("torch")
    folder = tmp_path_factory.mktemp("model_assets")
    (folder / "model.py").write_text(MODEL_PY)
    (folder / "handler.py").write_text(HANDLER_PY)
    (folder / "model-config.yaml").write_text(MODEL_CONFIG_YAML)
    (folder / "index_to_name.json").write_text(json.dumps(INDEX_TO_NAME))
    (folder / "extra_dir" / "sub").mkdir(parents=True)
    (folder / "extra_dir" / "a.txt").write_text("A\n")
    (folder / "extra_dir" / "sub" / "b.txt").write_text("B\n")
    tiny_net = import_file(folder / "model.py", "compat_assets_model").TinyNet
    with torch.random.fork_rng():  # fixed weights without disturbing the session's global RNG
        torch.manual_seed(0)
        model = tiny_net().eval()
    torch.save(model.state_dict(), folder / "tiny_state.pth")
    with warnings.catch_warnings():
        # torch 2.13 deprecates TorchScript, but TorchServe 0.12.0 archives still carry it.
        warnings.filterwarnings("ignore", r"`torch\.jit\.script` is deprecated", DeprecationWarning)
        torch.jit.script(model).save(str(folder / "tiny_ts.pt"))
    return folder
