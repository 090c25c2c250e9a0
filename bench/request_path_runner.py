"""Our backend under cProfile, for ``request_path.py``: ``python request_path_runner.py STATS BACKEND_ARGS...``.

Starts the backend as ``python -m ts_notebook.backend`` would, and profiles its event loop's thread
(where every request's front-end work runs) from SIGUSR1 to SIGUSR2, with CPU time as the clock, then
writes the stats to ``STATS``. Signals rather than a timer: the window then holds only the measured
traffic, however long start-up and registration took. Only for measuring: a profiled backend runs
about half as fast.
"""

from __future__ import annotations

import asyncio
import cProfile
import signal
import sys
import time


async def _profiled(stats: str, serve: object) -> None:
    loop = asyncio.get_running_loop()
    profile = cProfile.Profile(time.process_time)

    def stop() -> None:
        profile.disable()
        profile.dump_stats(stats)

    loop.add_signal_handler(signal.SIGUSR1, profile.enable)
    loop.add_signal_handler(signal.SIGUSR2, stop)
    await serve  # type: ignore[misc]


def main() -> None:
    stats, args = sys.argv[1], sys.argv[2:]
    from ts_notebook.backend.config import from_args
    from ts_notebook.backend.ipc import private_folder
    from ts_notebook.backend.pool import Zygote

    config = from_args(args)
    assert config.run_dir is not None
    private_folder(config.run_dir)
    zygote = Zygote(config.run_dir)
    zygote.launch()
    from ts_notebook.backend.server import run

    try:
        import uvloop
    except ImportError:
        asyncio.run(_profiled(stats, run(config, zygote)))
    else:
        uvloop.run(_profiled(stats, run(config, zygote)))


if __name__ == "__main__":
    main()
