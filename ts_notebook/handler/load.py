"""Find a handler's entry point the way TorchServe 0.12 does, without ever masking the real error.

Rules (``ts/model_loader.py``): split the spec at the first ``:``; strip ``.py``; take the base
name; import it with the model dir first on ``sys.path``. A module-level function named after the
``:`` (default ``handle``) wins; otherwise the module must define exactly one class, which is
instantiated and whose ``initialize(context)`` runs at load. TorchServe falls back to its built-in
handlers on *any* ImportError, hiding e.g. a missing dependency of your handler; we only fall
back when the module itself does not exist, and otherwise report the handler's own file and line.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

from ts_notebook.errors import HandlerError
from ts_notebook.handler.util import list_classes_from_module


@dataclass(frozen=True)
class Where:
    """The handler line an exception came from."""

    file: str
    line: int
    function: str
    code: str

    def __str__(self) -> str:
        return f"{Path(self.file).name}, line {self.line}, in {self.function}: {self.code}".rstrip(": ")


@dataclass(frozen=True)
class EntryPoint:
    """A resolved handler: ``handle(data, context)`` and the ``initialize(context)`` to run at load."""

    kind: str  # "function" | "class"
    name: str  # function name or class name
    module: ModuleType
    handle: Callable[[Any, Any], Any]
    initialize: Callable[[Any], Any]
    instance: Any = None


def module_name_of(spec: str) -> tuple[str, str | None]:
    module, _, function = spec.partition(":")
    module = module.removesuffix(".py").replace("\\", "/").split("/")[-1]
    return module, function or None


def locate(exc: BaseException, roots: tuple[Path, ...]) -> Where | None:
    """The deepest traceback frame inside the handler's files (or the SyntaxError's own line)."""
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        return Where(exc.filename, exc.lineno, "<module>", (exc.text or "").strip())
    resolved = [r.resolve() for r in roots]
    found: Where | None = None
    tb: TracebackType | None = exc.__traceback__
    for frame in traceback.extract_tb(tb):
        path = Path(frame.filename).resolve()
        if any(path == r or r in path.parents for r in resolved):
            found = Where(frame.filename, frame.lineno or 0, frame.name, (frame.line or "").strip())
    return found


def import_handler_module(spec: str, *dirs: Path) -> ModuleType:
    """Import the handler module from the first folder that has it, or TorchServe's built-in.

    Raises:
        HandlerError: the module is not found, or importing it raised (message has the real
            exception and the handler line).
    """
    module, _ = module_name_of(spec)
    sys.modules.pop(module, None)
    if any((d / f"{module}.py").is_file() for d in dirs):
        try:
            return importlib.import_module(module)
        except BaseException as exc:
            raise _load_error(f"importing handler module {module!r} failed", exc, dirs) from exc
    try:
        return importlib.import_module(f"ts.torch_handler.{module}")
    except ModuleNotFoundError as exc:
        if exc.name == f"ts.torch_handler.{module}":
            raise HandlerError(
                f"handler {spec!r}: no {module}.py in {', '.join(map(str, dirs))} and no TorchServe built-in handler "
                "of that name. "
                "Check --handler and that the file is in the model dir."
            ) from exc
        raise HandlerError(str(exc)) from exc


def _load_error(what: str, exc: BaseException, dirs: tuple[Path, ...]) -> HandlerError:
    where = locate(exc, dirs)
    at = f" at {where}" if where else ""
    return HandlerError(f"{what}{at}\n{type(exc).__name__}: {exc}")


def resolve_entry_point(spec: str, module: ModuleType) -> EntryPoint:
    """Apply TorchServe's entry-point rules to an imported handler module.

    Raises:
        HandlerError: no such function, or not exactly one class (names the classes found).
    """
    _, function = module_name_of(spec)
    name = function or "handle"
    if hasattr(module, name):
        fn = getattr(module, name)
        return EntryPoint("function", name, module, fn, lambda ctx: fn(None, ctx))
    # TorchServe falls back to the one-class rule, even when a function was named after ':'.
    classes = list_classes_from_module(module)
    if len(classes) != 1:
        found = ", ".join(c.__name__ for c in classes) or "none"
        missing = f"no function {name!r} in {module.__name__}, and " if function else ""
        raise HandlerError(
            f"handler {spec!r}: {missing}TorchServe needs a module-level {name}(data, context) function or exactly one "
            f"class defined in {module.__name__}, found {found}. Move helper classes to another module, or name the "
            "entry point as module:function."
        )
    instance = classes[0]()
    if not hasattr(instance, "handle"):
        raise HandlerError(f"handler {spec!r}: class {classes[0].__name__} has no handle(data, context) method.")
    return EntryPoint("class", classes[0].__name__, module, instance.handle, instance.initialize, instance)
