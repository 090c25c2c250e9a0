"""Transformers for TorchServe's BERT-sized session: ``make compat-venv`` installs none, so TorchServe's
PYTHONPATH gets a folder of links to the project venv's transformers and the packages it needs that the
reference venv lacks. Torch is never linked: TorchServe keeps the reference venv's own."""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
from pathlib import Path

from common import WORK
from machine import ref_python

OVERLAY = WORK / "serving-ts-overlay"


def make_overlay(ref_venv: Path) -> tuple[Path | None, list[str]]:
    """The overlay folder and the packages linked into it ("name version"); None when not needed."""
    if _ref_has(ref_venv, "transformers"):
        return None, []
    needed = _requirements("transformers")
    present = _ref_present(ref_venv, [d.metadata["Name"] for d in needed])
    shutil.rmtree(OVERLAY, ignore_errors=True)
    OVERLAY.mkdir(parents=True)
    linked = []
    for dist in needed:
        name = dist.metadata["Name"]
        if name in present:
            continue
        _link_top_levels(dist)
        linked.append(f"{name} {dist.version}")
    return OVERLAY, sorted(linked)


def _requirements(root: str) -> list[importlib.metadata.Distribution]:
    """``root`` and everything it requires (without extras), as installed in this venv; torch left out."""
    from packaging.requirements import Requirement

    needed, todo, seen = [], [root], set()
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen or key == "torch":  # torch: the reference venv's own, the same version
            continue
        seen.add(key)
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        needed.append(dist)
        for raw in dist.requires or []:
            req = Requirement(raw)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return needed


def _link_top_levels(dist: importlib.metadata.Distribution) -> None:
    roots = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
    for root in sorted(roots):
        src = Path(str(dist.locate_file(root)))
        if root == "__pycache__" or root.endswith(".pth") or not src.exists():
            continue
        if not (OVERLAY / root).exists():
            (OVERLAY / root).symlink_to(src)


def _ref_has(ref_venv: Path, module: str) -> bool:
    code = f"import importlib.util as u; print(u.find_spec({module!r}) is not None)"
    return ref_python(ref_venv, code).stdout.strip() == "True"


def _ref_present(ref_venv: Path, names: list[str]) -> set[str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = []\n"
        f"for n in {names!r}:\n"
        "    try:\n        m.version(n); out.append(n)\n"
        "    except m.PackageNotFoundError:\n        pass\n"
        "print(json.dumps(out))"
    )
    return set(json.loads(ref_python(ref_venv, code).stdout.strip() or "[]"))
