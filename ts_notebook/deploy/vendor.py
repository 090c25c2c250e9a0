"""Ship the handler runtime with an export: the parts of ts_notebook a Ray Serve replica or a KServe
model server needs to run a TorchServe handler (the Context, the ``ts`` layer, request shaping,
archive reading), copied next to the generated app so the target needs only torch and PyYAML.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import ts_notebook

# Folders copied whole and single modules: everything deploy/runtime.py imports, nothing of the
# notebook (magics, widgets) or the backend.
_PACKAGES = ("handler", "archive")
_MODULES = (
    "__init__.py",
    "errors.py",
    "importing.py",
    "jsontypes.py",
    "preview.py",
    "deploy/__init__.py",
    "deploy/runtime.py",
)


def copy_runtime(dest: Path) -> Path:
    """Copy the runtime into ``dest/ts_notebook``; returns that folder."""
    src = Path(ts_notebook.__file__).parent
    out = dest / "ts_notebook"
    for package in _PACKAGES:
        shutil.copytree(src / package, out / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for module in _MODULES:
        (out / module).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / module, out / module)
    return out


def requirements(extra: list[str]) -> str:
    """requirements.txt for the target: torch pinned to the notebook's version, PyYAML, and the engine."""
    import importlib.metadata as md

    def pinned(name: str) -> str:
        try:
            return f"{name}=={md.version(name).split('+')[0]}"  # a local build tag (+cpu) is not on PyPI
        except md.PackageNotFoundError:
            return name

    return "\n".join([pinned("torch"), "pyyaml", *extra]) + "\n"
