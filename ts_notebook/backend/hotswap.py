"""Swapping a worker's handler code in place, keeping what ``initialize`` loaded.

Runs in a worker. The backend asks for it only when the new generation differs from the running
one in the handler file alone (same weights, model file, configs, manifest). The worker then keeps
the loaded state only if running the new ``initialize`` could not give anything else: the new
handler class's ``__init__`` and ``initialize`` are the same code as the old one's (line numbers
aside) and read the same module-level constants. The new handler object gets the old one's
attributes (the model, the tokenizer, the label map); ``preprocess``, ``inference``,
``postprocess`` and ``handle`` are the new code. Function handlers keep their state in module
globals that a re-import resets, so they always get new workers. Anything else: a reason string,
and the backend forks new workers that run ``initialize`` (blue/green).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import CodeType, ModuleType
from typing import Any

from ts_notebook.backend.messages import Generation

_STATE_METHODS = ("__init__", "initialize")
_CONSTANTS = (str, bytes, int, float, complex, bool, type(None), tuple, frozenset)
# what a state method may read from its module and a swap compares, old against new
Constant = str | bytes | int | float | complex | bool | None | tuple[object, ...] | frozenset[object]
_TIMED = ("preprocess", "inference", "postprocess")


def _code_key(code: CodeType) -> tuple[Any, ...]:
    """What a function does, without where it sits in its file."""
    consts = tuple(_code_key(c) if isinstance(c, CodeType) else c for c in code.co_consts)
    return (code.co_code, consts, code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars)


def _method_code(cls: type, name: str) -> Any:
    fn = getattr(cls, name, None)
    code = getattr(fn, "__code__", None)
    return _code_key(code) if code is not None else fn  # a C slot (object.__init__) compares as itself


def _constants_read(cls: type, module: ModuleType) -> dict[str, Constant]:
    names: set[str] = set()
    for name in _STATE_METHODS:
        code = getattr(getattr(cls, name, None), "__code__", None)
        if code is not None:
            names.update(code.co_names)
    return {n: v for n in sorted(names) if isinstance(v := module.__dict__.get(n), _CONSTANTS)}


def same_initialize(old: Any, new_cls: type, new_module: ModuleType) -> str | None:
    """None when ``new_cls`` would initialize exactly as ``old``'s class did; else why not."""
    old_cls = type(old)
    old_module = sys.modules.get(old_cls.__module__)
    for name in _STATE_METHODS:
        if _method_code(old_cls, name) != _method_code(new_cls, name):
            return f"{new_cls.__name__}.{name} changed: it runs again in new workers"
    if old_module is None or _constants_read(old_cls, old_module) != _constants_read(new_cls, new_module):
        return "module-level values that initialize reads changed"
    return None


def _forget_modules(model_dir: str) -> dict[str, ModuleType]:
    """Drop the modules imported from the old generation's folder, so the new code is imported."""
    # A prefix test, not Path.resolve(): with torch imported there are thousands of modules, and
    # resolving each path costs a system call or more.
    prefix = str(Path(model_dir).resolve()) + os.sep
    gone = {}
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and file.startswith(prefix):
            gone[name] = sys.modules.pop(name)
    return gone


def swap_in_place(entry: Any, new: Generation, old: Generation, model_dir: Path) -> Any:
    """The new entry point carrying ``entry``'s state; a reason string when that is not safe; or the
    exception the new code raised on import (the caller reports it, and the old code keeps running).

    The old generation's modules come back into ``sys.modules`` whenever the swap does not happen.
    """
    from ts_notebook.handler.load import import_handler_module, resolve_entry_point

    if entry.kind != "class":
        return "a function handler keeps its state in module globals: new workers load it"
    previous = _forget_modules(old.model_dir)
    try:
        module = import_handler_module(new.handler, model_dir)
        classes = [c for c in vars(module).values() if isinstance(c, type) and c.__module__ == module.__name__]
        if len(classes) != 1:
            raise LookupError("not one class")
        reason = same_initialize(entry.instance, classes[0], module)
        if reason is not None:
            sys.modules.update(previous)
            return reason
        fresh = resolve_entry_point(new.handler, module)
    except LookupError:
        sys.modules.update(previous)
        return "the new handler is not one class: new workers load it"
    except BaseException as exc:
        sys.modules.update(previous)
        return exc
    state = {k: v for k, v in vars(entry.instance).items() if k not in _TIMED}
    vars(fresh.instance).update(state)
    return fresh
