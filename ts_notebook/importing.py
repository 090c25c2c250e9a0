"""Import user code from a folder (a model dir, a notebook's handler workspace) the way TorchServe's
worker does, without leaving anything behind in the notebook kernel."""

from __future__ import annotations

import sys
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _top_level_names(dirs: tuple[Path, ...]) -> set[str]:
    """Module names the folders provide at their top level (``x.py`` or a package ``x/``)."""
    names: set[str] = set()
    for d in dirs:
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.py"))
            names.update(p.name for p in d.iterdir() if (p / "__init__.py").is_file())
    return names


_INSTALLED = tuple(
    Path(p).resolve() for key in ("stdlib", "platstdlib", "purelib", "platlib") if (p := sysconfig.get_paths().get(key))
)


def _installed(module: object) -> bool:
    file = getattr(module, "__file__", None)
    if not file:
        return True  # built-in or namespace: not user code from a model dir
    path = Path(file).resolve()
    return any(root in path.parents for root in _INSTALLED)


@contextmanager
def dirs_on_path(*dirs: Path) -> Iterator[None]:
    """Import from these folders first, as TorchServe's worker does from the model dir
    (sys.path[0] = model dir), and leave the kernel as it was afterwards.

    Modules the folders provide (``model``, ``handler``, ...) are imported fresh, so edited files
    are read again, even if the notebook imported a module of the same name from elsewhere; after
    the run those are dropped and the kernel's own are put back. ``sys.path`` is restored exactly.
    Everything else (torch, transformers...) is left alone, wherever it lives.
    """
    roots = tuple(d.resolve() for d in dirs)
    # Installed and built-in modules already imported are never swapped out, even if a folder also
    # provides the name (a model dir that is, or holds, a site-packages): a second torch would crash.
    provided = _top_level_names(roots) - {n.split(".", 1)[0] for n, m in sys.modules.items() if _installed(m)}

    def ours(name: str) -> bool:
        return name.split(".", 1)[0] in provided

    saved_path = list(sys.path)
    stashed = {name: mod for name, mod in sys.modules.items() if ours(name)}
    for name in stashed:
        del sys.modules[name]
    for r in reversed(roots):
        sys.path.insert(0, str(r))
    try:
        yield
    finally:
        for name in [n for n in sys.modules if ours(n)]:
            del sys.modules[name]
        sys.modules.update(stashed)
        sys.path[:] = saved_path
