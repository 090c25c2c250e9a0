"""``python -m ts_notebook.backend [--model-store DIR] [--models NAME=PATH ...] [--ts-config FILE] ...``"""

from __future__ import annotations

import asyncio
import sys

from ts_notebook.backend.config import from_args
from ts_notebook.backend.server import run
from ts_notebook.errors import TsNotebookError


def main(argv: list[str] | None = None) -> int:
    try:
        config = from_args(argv)
        asyncio.run(run(config))
    except TsNotebookError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
