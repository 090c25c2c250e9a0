"""A notebook-like IPython shell for the magic tests: its own folder as the working dir, its own
per-user records folder, the extension freshly loaded, and everything it started stopped after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell


@contextmanager
def notebook_shell(
    folder: Path, monkeypatch: pytest.MonkeyPatch, start: str | None = None
) -> Iterator[InteractiveShell]:
    """The shell, in ``folder``; ``start`` is a ``%ts_serve start`` line to run first (e.g. ``--no-token``)."""
    (folder / "xdg").mkdir(exist_ok=True)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder / "xdg"))
    monkeypatch.chdir(folder)
    shell = InteractiveShell.instance()
    if "ts_notebook" in shell.extension_manager.loaded:
        shell.run_line_magic("unload_ext", "ts_notebook")  # stops what an earlier test left running
    shell.run_line_magic("load_ext", "ts_notebook")
    try:
        if start is not None:
            shell.run_line_magic("ts_serve", f"start {start}")
        yield shell
    finally:
        if "ts_notebook" in shell.extension_manager.loaded:
            shell.run_line_magic("unload_ext", "ts_notebook")
