"""``python -m ts_notebook.backend [--model-store DIR] [--models NAME=PATH ...] [--ts-config FILE] ...``

The zygote (which imports torch, the slowest part of a cold start) is launched before this process
imports its HTTP stack, so the two overlap.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from ts_notebook.backend.config import from_args
from ts_notebook.backend.ipc import private_folder
from ts_notebook.errors import TsNotebookError


def _run(main: Any) -> None:
    """Run the backend on uvloop when it is installed (TS_NOTEBOOK_LOOP=asyncio opts out)."""
    if os.environ.get("TS_NOTEBOOK_LOOP", "uvloop") == "uvloop":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(main)
            return
    asyncio.run(main)


def main(argv: list[str] | None = None) -> int:
    try:
        config = from_args(argv)
        assert config.run_dir is not None
        private_folder(config.run_dir)
        from ts_notebook.backend.pool import Zygote

        zygote = Zygote(config.run_dir)
        zygote.launch()
        from ts_notebook.backend.server import run

        _run(run(config, zygote))
    except TsNotebookError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
