"""How the backend is told to stop, and the deadline that makes it: SIGTERM/SIGINT and the death of
the kernel that started it are watched from threads of their own, so they work even when the event
loop is busy, and a stop that has not finished after ``grace`` seconds ends the process anyway.

Signals are blocked in every thread and taken with ``sigwait`` by one: a Python-level handler would
only run when the main thread next runs Python code. The zygote was started before the mask is set,
so it and the workers forked from it keep their default signal handling.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable

SIGNALS = {signal.SIGTERM, signal.SIGINT}


class Lifeline:
    def __init__(self, loop: asyncio.AbstractEventLoop, stop: asyncio.Event, hard_stop: Callable[[], None]) -> None:
        self._loop = loop
        self._stop = stop
        self._hard_stop = hard_stop  # last words before os._exit: remove the record, kill the workers
        self._requested = threading.Event()

    def start(self, parent_pid: int | None, grace: float = 2.0) -> None:
        self.grace = grace
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)  # threads made from now on inherit it
        threading.Thread(target=self._wait_signal, name="ts_notebook-signals", daemon=True).start()
        if parent_pid:
            threading.Thread(target=self._watch, args=(parent_pid,), name="ts_notebook-parent", daemon=True).start()

    def request_stop(self, why: str) -> None:
        if self._requested.is_set():
            return
        self._requested.set()
        self._loop.call_soon_threadsafe(self._stop.set)
        timer = threading.Timer(self.grace, self._deadline)
        timer.daemon = True
        timer.start()

    def _deadline(self) -> None:
        try:
            self._hard_stop()
        finally:
            os._exit(0)

    def _wait_signal(self) -> None:
        signum = signal.sigwait(SIGNALS)
        self.request_stop(signal.Signals(signum).name)

    def _watch(self, pid: int) -> None:
        while not self._requested.is_set():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                self.request_stop(f"parent {pid} exited")
                return
            except PermissionError:
                pass  # alive, someone else's: a pid reused by another user means ours is gone, but rare
            time.sleep(0.5)
