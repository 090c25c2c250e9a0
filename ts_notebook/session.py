"""The backends one kernel started or uses, and which of them its magics talk to.

``%ts_serve start`` with other options while a backend runs must not start a second one and
forget the first (``stop`` would then stop only the new one while the old one ran on unseen).
So every backend is tracked here from its start to its stop, and unloading the extension stops
those this kernel started that were not detached. Core module: returns values, raises, never prints.

The engine choice lives here too: the launcher finds, reuses, starts and stops the embedded backend
and knows no other; ``start_backend`` / ``stop_backend`` hand real TorchServe's start and stop
(``deploy/launch.py``) to it, so the generic launcher never imports what leaves the notebook.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ts_notebook import launcher
from ts_notebook.backend.info import BackendInfo
from ts_notebook.errors import BackendError

TORCHSERVE = "torchserve"
_TORCHSERVE_GRACE = 20.0  # a JVM and its Python workers take longer to stop than the embedded backend


def start_backend(
    spec: launcher.LaunchSpec, *, timeout: float = 120.0, argv: list[str] | None = None
) -> launcher.Outcome:
    """Reuse or start the backend for ``spec`` with the engine it names (embedded, or real TorchServe).

    ``argv`` replaces the embedded backend's command (tests start stub backends with it).
    """
    if spec.engine == TORCHSERVE:
        # Imported here: real TorchServe is rare in a notebook and its runner need not load with the magics.
        from ts_notebook.deploy import launch

        return launcher.start(spec, timeout=timeout, engine=launch.start)
    return launcher.start(spec, timeout=timeout, argv=argv)


def stop_backend(info: BackendInfo, *, grace: float = 10.0) -> bool:
    """Stop a backend with the engine that runs it (gracefully, then forcefully). True when it is gone."""
    if not info.embedded:  # real TorchServe is the only other engine
        from ts_notebook.deploy import launch

        return launch.stop(info, max(grace, _TORCHSERVE_GRACE))
    return launcher.stop(info, grace=grace)


class BackendRunning(BackendError):
    """A start with other settings while this kernel's backend runs (``replace`` stops it first)."""

    def __init__(self, running: Tracked) -> None:
        info = running.info
        super().__init__(
            f"a backend started from this notebook is already running with other settings (pid {info.pid}, "
            f"model store {info.model_store}, inference {info.inference_address}); no second one was started"
        )
        self.running = running


@dataclass
class Tracked:
    """One backend this kernel knows: its record, the settings key it was started with, and how."""

    info: BackendInfo
    key: str
    detach: bool
    started_here: bool

    def alive(self) -> bool:
        try:
            record = BackendInfo.read(self.info.run_dir)
        except BackendError:
            return False
        return record is not None and record.pid == self.info.pid and launcher.is_alive(self.info.pid)


@dataclass
class ServingSession:
    """Every backend of one kernel; ``current`` is the one ``%ts_serve`` subcommands drive."""

    backends: dict[int, Tracked] = field(default_factory=dict)  # by pid
    current_pid: int | None = None

    def current(self) -> Tracked | None:
        """The backend in use, if it still serves (a stopped or crashed one is forgotten)."""
        self._forget_dead()
        return self.backends.get(self.current_pid) if self.current_pid is not None else None

    def _forget_dead(self) -> None:
        for pid, tracked in list(self.backends.items()):
            if not tracked.alive():
                del self.backends[pid]
        if self.current_pid not in self.backends:
            self.current_pid = None

    def start(
        self,
        spec: launcher.LaunchSpec,
        *,
        replace: bool = False,
        timeout: float = 120.0,
        argv: list[str] | None = None,
    ) -> launcher.Outcome:
        """Start (or reuse) the backend for ``spec`` and make it current.

        Raises:
            BackendRunning: the current backend has other settings and ``replace`` is false; it keeps
                running, nothing new is started.
        """
        running = self.current()
        if running is not None and running.key != spec.key():
            if not replace:
                raise BackendRunning(running)
            self.stop(running)
        outcome = start_backend(spec, timeout=timeout, argv=argv)
        if isinstance(outcome, launcher.Started | launcher.Reused):
            here = isinstance(outcome, launcher.Started)
            known = self.backends.get(outcome.info.pid)
            self.backends[outcome.info.pid] = Tracked(
                outcome.info, spec.key(), spec.detach, here or (known is not None and known.started_here)
            )
            self.current_pid = outcome.info.pid
        return outcome

    def stop(self, tracked: Tracked | None = None) -> BackendInfo:
        """Stop ``tracked`` (default: the current backend) and forget it.

        Raises:
            BackendError: nothing is running, or the process did not stop (the message says how to kill it).
        """
        tracked = tracked or self.current()
        if tracked is None:
            raise BackendError("no backend is running for this notebook")
        info = tracked.info
        if not stop_backend(info):
            raise BackendError(f"backend pid {info.pid} did not stop; kill it with: kill -9 {info.pid}")
        self.backends.pop(info.pid, None)
        if self.current_pid == info.pid:
            self.current_pid = None
        return info

    def shutdown(self) -> list[int]:
        """Stop every backend this kernel started and did not detach; the pids stopped.

        Detached backends, and ones another kernel started that this one only reused, keep running.
        """
        stopped = []
        for tracked in list(self.backends.values()):
            if tracked.started_here and not tracked.detach and tracked.alive():
                self.stop(tracked)
                stopped.append(tracked.info.pid)
        self.backends.clear()
        self.current_pid = None
        return stopped
