"""The fixture layer itself: archives made by the real archiver load and serve in the real TorchServe."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from tests.assets import tiny_model
from ts_notebook.deploy.torchserve import TorchServe

from .conftest import Archiver

pytestmark = pytest.mark.compat

REQUEST = {"input": [1, 2, 3, 4]}
ARCHIVER_ARGS = {
    "eager": ["--model-file", "model.py", "--serialized-file", "tiny_state.pth", "--handler", "handler.py"],
    "torchscript": ["--serialized-file", "tiny_ts.pt", "--handler", "handler.py"],
}


def _in_process(kind: str, assets: Path) -> list[float]:
    """What the model computes for REQUEST here, loaded the way TorchServe's BaseHandler would."""
    torch: Any = pytest.importorskip("torch")
    if kind == "eager":
        model = tiny_model()
        model.load_state_dict(torch.load(assets / "tiny_state.pth", weights_only=True))
    else:
        with warnings.catch_warnings():
            # torch 2.13 deprecates TorchScript; TorchServe 0.12.0 still serves it.
            warnings.filterwarnings("ignore", r"`torch\.jit\.load` is deprecated", DeprecationWarning)
            model = torch.jit.load(str(assets / "tiny_ts.pt"))
    with torch.no_grad():
        row: list[float] = model.eval()(torch.tensor([REQUEST["input"]], dtype=torch.float32))[0].tolist()
    return row


@pytest.mark.parametrize("kind", ["eager", "torchscript"])
def test_real_archive_serves_the_models_output(
    kind: str, real_archiver: Archiver, torchserve: TorchServe, model_assets: Path, tmp_path: Path
) -> None:
    name = f"tiny_{kind}"
    proc = real_archiver(
        "--model-name", name, "--version", "1.0", ARCHIVER_ARGS[kind], "--export-path", tmp_path, cwd=model_assets
    )
    assert proc.returncode == 0, proc.stderr

    registered = torchserve.register(tmp_path / f"{name}.mar")
    assert registered == {"status": f'Model "{name}" Version: 1.0 registered with 1 initial workers'}
    try:
        status, body = torchserve.predict(name, json.dumps(REQUEST).encode())
    finally:
        torchserve.unregister(name)

    assert status == 200, body
    assert json.loads(body) == pytest.approx(_in_process(kind, model_assets), abs=1e-4)
