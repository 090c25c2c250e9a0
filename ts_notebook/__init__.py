"""ts_notebook: write, debug, package and serve TorchServe handlers from a notebook.

``%load_ext ts_notebook`` registers the magics and does nothing else: nothing starts and nothing
heavy is imported until a magic runs.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    """Register the ts_notebook magics on ``ipython`` (called by ``%load_ext ts_notebook``)."""
    from ts_notebook.magics import TsNotebookMagics

    ipython.register_magics(TsNotebookMagics)


def unload_ipython_extension(ipython: Any) -> None:
    """Stop what the magics started: dashboard pollers, and backends started by this kernel that were
    not detached (``%unload_ext ts_notebook``; ``%reload_ext`` does this before loading again)."""
    magics = ipython.magics_manager.registry.get("TsNotebookMagics")
    if magics is not None:
        magics.shutdown()
