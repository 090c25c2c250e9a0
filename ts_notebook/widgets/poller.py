"""The one thread that owns a dashboard's widget updates.

ipywidgets is not thread-safe, so nothing else mutates the dashboard while its poller runs: button
callbacks and method twins hand their work to the poller's queue, and it applies everything, with
the changes of one round batched. Without a running poller (tests, or before ``start()``) the
work runs in the caller's thread.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FuturesTimeout
from typing import Any, TypeVar

T = TypeVar("T")


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
        return self._is_running()

    def _is_running(self) -> bool:
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

    def call(self, action: Callable[[], T], timeout: float = 120.0) -> T:
        """Run ``action`` on the poller's thread and return its result (or raise its exception).

        Method twins use this so that scripts get the answer while the poller stays the only thread
        that touches widgets. Called from the poller itself, or with no poller running, ``action``
        runs right here.
        """
        if not self.running or threading.current_thread() is self._thread:
            return action()
        done: Future[T] = Future()

        def run() -> None:
            if not done.set_running_or_notify_cancel():
                return  # the caller gave up on the poller and ran it itself
            try:
                done.set_result(action())
            except BaseException as exc:  # handed to the caller, who sees it as if it ran there
                done.set_exception(exc)

        self._actions.put(run)
        self._wake.set()
        deadline = time.monotonic() + timeout
        while True:
            try:
                return done.result(0.05)
            except FuturesTimeout:
                pass
            # The poller stopped before it took the action: run it here (cancel fails once it started).
            if not self._is_running() and done.cancel():
                return action()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the dashboard's poller did not run the action within {timeout} s")

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
