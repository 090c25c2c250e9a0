"""What reading the archive shows without running it: the handler's imports resolved against the
archive and this environment, file names and absolute paths in the handler checked against the
archive's files, the model file's classes, and the files the manifest names."""

from __future__ import annotations

import ast
import importlib.machinery
import re
import sys
from pathlib import Path

from ts_notebook.doctor.findings import Finding, Place
from ts_notebook.jsontypes import JsonObject

DATA_FILE = re.compile(
    r"^[\w./\\-]+\.(json|txt|pt|pth|bin|yaml|yml|csv|tsv|model|vocab|onnx|safetensors|pkl|npy|npz|ckpt|h5)$"
)
ABSOLUTE = re.compile(r"^(/(home|Users|root|mnt|data|opt|srv|workspace|tmp|var)/|[A-Za-z]:\\)")


def archive_files(model_dir: Path) -> set[str]:
    """Paths (posix, relative) of every file in the model dir, and their base names."""
    files = {p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*") if p.is_file()}
    return files | {f.rsplit("/", 1)[-1] for f in files}


def handler_file(model_dir: Path, manifest: JsonObject) -> Path | None:
    spec = str((manifest.get("model") or {}).get("handler") or "")
    module = spec.split(":", 1)[0]
    path = model_dir / (module if module.endswith(".py") else f"{module}.py")
    return path if path.is_file() else None


def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8", errors="replace"), str(path))
    except SyntaxError:
        return None  # the probe reports it with its line


def _guarded(tree: ast.Module) -> set[int]:
    """Line numbers of imports inside ``try`` blocks (optional imports, never findings)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try):
            for inner in node.body:
                lines |= {n.lineno for n in ast.walk(inner) if isinstance(n, (ast.Import, ast.ImportFrom))}
    return lines


def imports(tree: ast.Module) -> list[tuple[str, int]]:
    """(top-level module, line) of each unguarded absolute import."""
    guarded, found = _guarded(tree), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and node.lineno not in guarded:
            found += [(alias.name.split(".")[0], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.lineno not in guarded:
            found.append((node.module.split(".")[0], node.lineno))
    return found


def importable(name: str, model_dir: Path) -> bool:
    if name == "ts" or name in sys.stdlib_module_names:
        return True
    if (model_dir / f"{name}.py").is_file() or (model_dir / name / "__init__.py").is_file():
        return True
    # What a worker sees: installed packages, not the folder this check runs from (a notebook's
    # folder is on the kernel's path; the helper module sitting there is not in the archive).
    here = {"", str(Path.cwd())}
    try:
        return importlib.machinery.PathFinder.find_spec(name, [p for p in sys.path if p not in here]) is not None
    except (ImportError, ValueError):
        return False


def import_findings(model_dir: Path, sources: list[Path], requirements: set[str]) -> list[Finding]:
    """A module the handler (or a packaged helper) imports that neither the archive nor this
    environment has: a helper left out of ``--extra-files`` (#2), or a package not installed (#3)."""
    out = []
    for source in sources:
        tree = _parse(source)
        for name, line in imports(tree) if tree else []:
            if importable(name, model_dir):
                continue
            where = Place(source.name, line, f"import {name}")
            if name.lower().replace("_", "-") in requirements:
                out.append(
                    Finding.at(
                        where,
                        3,
                        f"{name} is in requirements.txt but not installed here",
                        f"pip install {name} here, and set install_py_dep_per_model=true so TorchServe installs it",
                    )
                )
            else:
                out.append(
                    Finding.at(
                        where,
                        2,
                        f"the handler imports {name}, which is neither in the archive nor installed",
                        f"if {name}.py is yours, package it: --extra-files {name}.py (it lands next to the handler); "
                        f"if it is a package, add it to requirements.txt (-r) and install it",
                    )
                )
    return out


def _calls_with_strings(tree: ast.Module) -> list[tuple[str, int, bool]]:
    """String constants with the line they are on, and whether they are an argument of a call
    (``open``, ``os.path.join``, ``Path``, a loader): those are read as files."""
    in_call: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            in_call |= {id(a) for a in node.args if isinstance(a, ast.Constant)}
    return [
        (node.value, node.lineno, id(node) in in_call)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) < 300
    ]


def path_findings(model_dir: Path, handler: Path, files: set[str]) -> list[Finding]:
    """File names the handler uses that are not in the archive (#4), and absolute paths (#4)."""
    tree = _parse(handler)
    out: list[Finding] = []
    for value, line, called in _calls_with_strings(tree) if tree else []:
        where = Place(handler.name, line, repr(value))
        if ABSOLUTE.match(value):
            exists = Path(value).exists()
            out.append(
                Finding.at(
                    where,
                    4,
                    f"an absolute path{' that exists only on this machine' if exists else ' that does not exist here'}",
                    f"package the file (--extra-files {Path(value).name}) and open it as "
                    f"os.path.join(context.system_properties['model_dir'], '{Path(value).name}')",
                    severity="error" if not exists else "warning",
                )
            )
        elif (
            DATA_FILE.match(value)
            and value.replace("\\", "/").lstrip("./") not in files
            and Path(value).name not in files
        ):
            label_map = Path(value).name == "index_to_name.json"
            out.append(
                Finding.at(
                    where,
                    4,
                    "the label map is not in the archive: labels stay None"
                    if label_map
                    else f"the handler uses {value}, which is not in the archive",
                    f"add it with --extra-files {value}" + (" (or check the spelling of the name)" if called else ""),
                    severity="error" if called and not label_map else "warning",
                )
            )
    return out


def model_class_findings(model_dir: Path, manifest: JsonObject) -> list[Finding]:
    """TorchServe builds the eager model from the model file's one class (#5)."""
    name = (manifest.get("model") or {}).get("modelFile")
    if not name or not (model_dir / name).is_file():
        return []
    tree = _parse(model_dir / name)
    classes = [n.name for n in (tree.body if tree else []) if isinstance(n, ast.ClassDef)]
    if len(classes) == 1 or tree is None:
        return []
    return [
        Finding(
            5,
            f"the model file defines {len(classes)} classes; TorchServe needs exactly one "
            '("Expected only one class as model definition")',
            "keep only the nn.Module in the model file; move helper classes to a module given with --extra-files",
            evidence=", ".join(classes) or "none",
            file=name,
        )
    ]


def manifest_findings(model_dir: Path, manifest: JsonObject, files: set[str]) -> list[Finding]:
    """Files the manifest names that the archive lacks (#4), and a handler that is no file (#1)."""
    model = manifest.get("model") or {}
    out = []
    for key, flag in (
        ("serializedFile", "--serialized-file"),
        ("modelFile", "--model-file"),
        ("configFile", "--config-file"),
    ):
        value = model.get(key)
        if value and value not in files:
            out.append(
                Finding(
                    4,
                    f"the manifest's {key} {value} is not in the archive",
                    f"rebuild with {flag} {value}",
                    file="MAR-INF/MANIFEST.json",
                )
            )
    handler = str(model.get("handler") or "")
    module = handler.split(":", 1)[0]
    local = (model_dir / f"{module}.py").exists()
    if handler and not module.endswith(".py") and "/" not in module and not local and module not in _BUILTINS:
        summary = f"handler {handler!r} is neither a file in the archive nor a TorchServe built-in"
        out.append(Finding(1, summary, "rebuild with --handler path/to/handler.py", file="MAR-INF/MANIFEST.json"))
    return out


_BUILTINS = (
    "base_handler",
    "image_classifier",
    "object_detector",
    "image_segmenter",
    "text_classifier",
    "text_handler",
    "vision_handler",
    "dali_image_classifier",
    "vllm_handler",
    "trt_llm_handler",
)
