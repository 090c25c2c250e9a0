"""Checks a build runs before it writes anything, and that ``check_archive`` runs on an archive
that will not load. Each failure names the bad value and the fix.
"""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ts_notebook.errors import ArchiveError
from ts_notebook.jsontypes import JsonObject

MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.]*$")
# Handler names TorchServe 0.12 resolves to ts.torch_handler.<name>; the archiver copies nothing for them.
BUILTIN_HANDLERS = (
    "base_handler",
    "text_classifier",
    "image_classifier",
    "object_detector",
    "image_segmenter",
    "dali_image_classifier",
    "vllm_handler",
    "trt_llm_handler",
)
LSP_BUILTIN_HANDLERS = ("BaseHandler", "TorchScriptHandler")
# model-config.yaml keys TorchServe 0.12's frontend reads (ModelConfig), with the type it expects.
FRONTEND_CONFIG_KEYS: dict[str, type | tuple[type, ...]] = {
    "minWorkers": int,
    "maxWorkers": int,
    "batchSize": int,
    "maxBatchDelay": int,
    "responseTimeout": int,
    "startupTimeout": int,
    "deviceType": str,
    "deviceIds": list,
    "parallelLevel": int,
    "parallelType": str,
    "parallelMode": str,
    "torchrun": dict,
    "jobQueueSize": int,
    "useJobTicket": bool,
    "asyncCommunication": bool,
    "maxRetryTimeoutInSec": int,
    "clientTimeoutInMills": int,
    "continuousBatching": bool,
    "sequenceBatching": bool,
    "sequenceMaxIdleMSec": int,
    "sequenceTimeoutMSec": int,
    "maxNumSequence": int,
    "maxSequenceJobQueueSize": int,
    "useVenv": bool,
}
# Sections TorchServe's Python side or its examples read; any other mapping is a handler section too.
KNOWN_SECTIONS = ("handler", "pt2", "deepspeed", "micro_batching", "ipex", "torch_tensorrt", "onnx")


@dataclass(frozen=True)
class HandlerSource:
    """How a ``--handler`` value resolves: the file to copy (None for a built-in) and the manifest value."""

    spec: str
    manifest_value: str
    file: Path | None
    function: str | None


MAX_NAME = 200  # the archive file name (plus our temporary prefix) must stay under the 255-byte limit


def check_model_name(name: str) -> None:
    """TorchServe's name rule: a letter or digit first, then letters, digits, ``_``, ``-`` or ``.``."""
    if len(name or "") > MAX_NAME:
        raise ArchiveError(
            f"model name {name[:20]}... is {len(name)} characters; keep it to {MAX_NAME} or fewer (file names "
            "are limited to 255 bytes)."
        )
    if not MODEL_NAME_RE.match(name or ""):
        raise ArchiveError(
            f"model name {name!r} is not allowed: it must match ^[A-Za-z0-9][A-Za-z0-9_\\-.]*$ "
            "(start with a letter or digit; then only letters, digits, '_', '-' and '.'). "
            f"Try --model-name {_name_fix(name)}."
        )


def _name_fix(name: str) -> str:
    fixed = re.sub(r"[^A-Za-z0-9_\-.]+", "_", name or "model").lstrip("_-.")
    return fixed or "model"


def resolve_handler(spec: str, runtime: str = "python", search_dirs: tuple[Path, ...] = ()) -> HandlerSource:
    """Resolve a ``--handler`` value the way torch-model-archiver does, with better errors.

    Accepted: a built-in name (``image_classifier``), ``path/module.py``, ``path/module``,
    ``path/module:function``; also ``path/module.py:function``, which the reference archiver
    rejects, recorded as ``module:function``. ``search_dirs`` are tried for relative paths after the
    current folder (``--model-path`` packaging keeps the handler inside the model folder).

    Raises:
        ArchiveError: empty spec, missing file, or a file that is not a usable handler.
    """
    spec = spec.strip()
    if not spec:
        raise ArchiveError("--handler is empty: pass a built-in name such as base_handler or a handler .py file.")
    builtins = LSP_BUILTIN_HANDLERS if runtime == "LSP" else BUILTIN_HANDLERS
    if spec in builtins:
        return HandlerSource(spec, spec, None, None)
    module, _, function = spec.partition(":")
    suffix = ".so" if runtime == "LSP" else ".py"
    if module.endswith(suffix):
        module = module[: -len(suffix)]
    file = _find(Path(module + suffix), search_dirs)
    manifest_value = Path(module).name + (f":{function}" if function else "")
    if not function and spec.endswith(suffix):
        manifest_value = Path(spec).name
    if file is None:
        raise ArchiveError(_missing_handler_message(spec, module + suffix, builtins))
    if runtime != "LSP":
        check_handler_source(file, function or None)
    return HandlerSource(spec, manifest_value, file, function or None)


def _find(path: Path, search_dirs: tuple[Path, ...]) -> Path | None:
    if path.is_file():
        return path
    if not path.is_absolute():
        for folder in search_dirs:
            if (folder / path).is_file():
                return folder / path
    return None


def _missing_handler_message(spec: str, file: str, builtins: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(spec, builtins, n=1, cutoff=0.7)
    hint = f" Did you mean the built-in handler {close[0]!r}?" if close else ""
    return (
        f"--handler {spec!r}: no file {file!r} (looked from {Path.cwd()}).{hint} Pass a handler file "
        f"(path/handler.py or path/handler:function) or a built-in name: {', '.join(builtins)}."
    )


def check_handler_source(file: Path, function: str | None) -> None:
    """Fail early on what would make TorchServe's worker die at load: a syntax error, or a module
    with neither the entry function (``handle`` unless named after ``:``; imported ones count) nor,
    as TorchServe's fallback, exactly one class."""
    tree = _parse(file, "handler")
    top = _top_level(tree)
    names = {n.name for n in top if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    names |= {t.id for n in top if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    for node in top:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if any(alias.name == "*" for alias in node.names):
                return  # a star import may bring anything: leave it to the dry run and the server
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    entry = function or "handle"
    if entry in names:
        return
    classes = [n.name for n in top if isinstance(n, ast.ClassDef)]
    if len(classes) != 1:
        found = ", ".join(classes) if classes else "no class"
        missing = f"no top-level function {function!r}, and " if function else ""
        raise ArchiveError(
            f"handler {file}: {missing}TorchServe needs a top-level {entry}(data, context) function or exactly one "
            f"class in the module, found {found}. Move helper classes to another module (add it with "
            "--extra-files) or name the entry point as module:function."
        )


def check_model_file(file: Path) -> None:
    """A Python ``--model-file`` must define exactly one class, a ``torch.nn.Module`` subclass:
    TorchServe's BaseHandler instantiates the only class it finds. Other files pass unchecked."""
    if file.suffix != ".py":
        return
    classes = [n for n in _top_level(_parse(file, "model file")) if isinstance(n, ast.ClassDef)]
    if len(classes) != 1:
        names = ", ".join(c.name for c in classes) or "none"
        raise ArchiveError(
            f"--model-file {file}: defines {len(classes)} classes ({names}); TorchServe's BaseHandler "
            "needs exactly one, the torch.nn.Module subclass to instantiate. Move the other classes to a "
            "module passed with --extra-files and import them."
        )
    bases = [ast.unparse(b) for b in classes[0].bases]
    if not bases or bases == ["object"]:
        raise ArchiveError(
            f"--model-file {file}: class {classes[0].name} does not subclass torch.nn.Module, so "
            f"TorchServe cannot load a state_dict into it. Declare it as class {classes[0].name}(nn.Module)."
        )


def _parse(file: Path, what: str) -> ast.Module:
    try:
        return ast.parse(file.read_bytes(), filename=str(file))
    except SyntaxError as exc:
        raise ArchiveError(
            f"{what} {file}, line {exc.lineno}: {exc.msg}. Fix the syntax error and build again."
        ) from exc


def _top_level(tree: ast.Module) -> list[ast.stmt]:
    """Module-level statements, looking inside top-level if/try blocks (common for optional imports)."""
    out: list[ast.stmt] = []
    stack: list[ast.stmt] = list(tree.body)
    while stack:
        node = stack.pop(0)
        out.append(node)
        if isinstance(node, ast.If):
            stack.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            stack.extend(node.body + node.orelse + node.finalbody)
            for h in node.handlers:
                stack.extend(h.body)
    return out


def check_config_file(file: Path) -> JsonObject:
    """Load a ``model-config.yaml`` safely and check its keys against what TorchServe knows.

    Unknown scalar keys are refused with the closest known key (``maxBatchDelays`` ->
    ``maxBatchDelay``); unknown mappings are allowed, as sections the handler reads from
    ``context.model_yaml_config``.
    """
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise ArchiveError(
            f"--config-file {file}{where}: not valid YAML ({_first_line(exc)}). Fix it and build again."
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ArchiveError(
            f"--config-file {file}: expected a mapping of keys such as minWorkers: 1, got a {type(data).__name__}."
        )
    for key, value in data.items():
        _check_config_key(file, str(key), value)
    return data


def _check_config_key(file: Path, key: str, value: Any) -> None:
    if key in FRONTEND_CONFIG_KEYS:
        expected = FRONTEND_CONFIG_KEYS[key]
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            kind = expected.__name__ if isinstance(expected, type) else "/".join(t.__name__ for t in expected)
            raise ArchiveError(f"--config-file {file}: {key} must be a {kind}, got {value!r}.")
        return
    known = [*FRONTEND_CONFIG_KEYS, *KNOWN_SECTIONS]
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    if close and close[0] != key:
        raise ArchiveError(
            f"--config-file {file}: unknown key {key!r}; did you mean {close[0]!r}? TorchServe silently "
            "ignores keys it does not know."
        )
    if key in KNOWN_SECTIONS or isinstance(value, dict):
        return
    raise ArchiveError(
        f"--config-file {file}: unknown key {key!r}, which TorchServe ignores. Known keys: "
        f"{', '.join(FRONTEND_CONFIG_KEYS)}. Put settings for your own handler under a section, "
        f"e.g. handler: {{{key}: ...}}, and read them from context.model_yaml_config."
    )


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
