"""Session fixtures for the compatibility suite: the reference venv, its real archiver, a real TorchServe,
and a tiny model with its handler to archive and serve.

The reference venv (torch, torchserve 0.12.0, torch-model-archiver 0.12.0, pyyaml) is named by the
`TS_REF_VENV` environment variable; without it every test that needs it is skipped.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from ts_notebook.deploy.torchserve import TorchServe

ArchiverArg = str | os.PathLike[str]
Archiver = Callable[..., "subprocess.CompletedProcess[str]"]

_VENV_HINT = "create it with `make compat-venv` and set TS_REF_VENV to its path"


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

    def run(
        *args: ArchiverArg | Sequence[ArchiverArg], cwd: ArchiverArg | None = None, timeout: float = 300.0
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(exe)]
        for arg in args:
            argv += [os.fspath(arg)] if isinstance(arg, str | os.PathLike) else [os.fspath(a) for a in arg]
        env = _reference_env(ts_ref_venv) | {"TMPDIR": tempfile.mkdtemp(dir=staging_root)}
        return subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture(scope="session")
def torchserve(ts_ref_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TorchServe]:
    """A started TorchServe shared by the session (a start costs seconds), stopped at the end."""
    with TorchServe(ts_ref_venv, root=tmp_path_factory.mktemp("torchserve")) as server:
        yield server


@pytest.fixture(scope="session")
def model_assets(assets: Path) -> Path:
    """The shared inputs of tests/assets.py (TinyNet as eager and TorchScript, handlers, config, extra_dir)."""
    return assets


def _target_venv(variable: str, executable: str) -> Path:
    raw = os.environ.get(variable)
    if not raw:
        pytest.skip(f"{variable} is not set: `make deploy-venvs` creates it (the Makefile's pytest sets it)")
    venv = Path(raw)
    if not (venv / "bin" / executable).is_file():
        pytest.skip(f"{variable}={raw} has no bin/{executable}: create it with `make deploy-venvs`")
    return venv


@pytest.fixture(scope="session")
def kserve_venv() -> Path:
    """A venv with kserve 0.21.0 and torch (pinned), from `TS_KSERVE_VENV`."""
    return _target_venv("TS_KSERVE_VENV", "python")


@pytest.fixture(scope="session")
def ray_venv() -> Path:
    """A venv with ray[serve] 2.60.0 and torch (pinned), from `TS_RAY_VENV`."""
    return _target_venv("TS_RAY_VENV", "serve")
