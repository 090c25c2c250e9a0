"""The one thread that owns a dashboard's widget updates.

ipywidgets is not thread-safe, so nothing else mutates the dashboard while its poller runs: button
callbacks and method twins hand their work to the poller's queue, and it applies everything, with
the changes of one round batched. Without a running poller (tests, or before ``start()``) the
work runs in the caller's thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any


class Poller:
    """Calls ``tick`` every ``interval`` seconds, and runs queued actions between ticks."""

    def __init__(
        self, tick: Callable[[], None], interval: float = 1.0, on_error: Callable[[BaseException], None] | None = None
    ) -> None:
        self._tick = tick
        self.interval = interval
        self._on_error = on_error
        self._actions: queue.Queue[Callable[[], Any]] = queue.Queue()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="ts_notebook-dashboard", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._thread = None

    def submit(self, action: Callable[[], Any]) -> None:
        """Run ``action`` on the poller's thread (or right here when no poller runs)."""
        if self.running:
            self._actions.put(action)
            self._wake.set()
        else:
            action()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._drain()
            try:
                self._tick()
            except Exception as exc:  # a failed round must not end the dashboard
                if self._on_error is not None:
                    self._on_error(exc)
            self._wake.wait(self.interval)
            self._wake.clear()
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                action = self._actions.get_nowait()
            except queue.Empty:
                return
            try:
                action()
            except Exception as exc:
                if self._on_error is not None:
                    self._on_error(exc)
