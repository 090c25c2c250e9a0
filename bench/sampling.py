"""Memory and CPU measurements taken beside the timings: RSS sampled on a thread, PSS snapshots, CPU
accounting over a load run, and a child process's peak RSS for the archive builds.

The serving samplers take any server with ``frontend_pid``, ``role(proc)`` (front end, worker, zygote
or other) and ``worker_torch_threads()``; see ``servers.py``.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Protocol

import psutil  # type: ignore[import-untyped]

SAMPLE_INTERVAL = 0.1


class Sampled(Protocol):
    @property
    def frontend_pid(self) -> int | None: ...

    def role(self, proc: psutil.Process) -> str: ...

    def worker_torch_threads(self) -> list[int] | None: ...


def process_tree(pid: int | None) -> list[psutil.Process]:
    """The process and every descendant at this moment; empty when it is gone."""
    if pid is None:
        return []
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


class MemorySampler:
    """Samples the RSS of every process of a server's tree every 100 ms on a thread, by role
    (front end, worker, zygote, other), keeping peaks per phase: the largest front end, the largest
    single worker, the largest sum over workers, the largest tree total."""

    def __init__(self, server: Sampled) -> None:
        self.server = server
        self.phase = "start"
        self.peaks: dict[str, dict[str, float]] = {}
        self.threads: dict[str, dict[str, int]] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._done.is_set():
            self.sample()
            self._done.wait(SAMPLE_INTERVAL)

    def sample(self) -> None:
        sums: dict[str, float] = {}
        worker_max = 0.0
        for proc in process_tree(self.server.frontend_pid):
            try:
                rss = proc.memory_info().rss / 2**20
            except psutil.Error:
                continue
            role = self.server.role(proc)
            sums[role] = sums.get(role, 0.0) + rss
            if role == "worker":
                worker_max = max(worker_max, rss)
        if not sums:
            return
        peaks = self.peaks.setdefault(self.phase, {})
        values = {
            "frontend_mb": sums.get("frontend", 0.0),
            "worker_max_mb": worker_max,
            "workers_sum_mb": sums.get("worker", 0.0),
            "zygote_mb": sums.get("zygote", 0.0),
            "other_mb": sums.get("other", 0.0),
            "tree_mb": sum(sums.values()),
        }
        for key, value in values.items():
            peaks[key] = round(max(peaks.get(key, 0.0), value), 1)


def footprint(server: Sampled) -> dict[str, Any]:
    """One snapshot of the tree: RSS and PSS (shared pages split between the processes that map them:
    forked workers share torch with the zygote) by role, and each worker's thread count."""
    out: dict[str, Any] = {"rss_mb": {}, "pss_mb": {}, "worker_threads": []}
    for proc in process_tree(server.frontend_pid):
        try:
            full = proc.memory_full_info()
            threads = proc.num_threads()
        except psutil.Error:
            continue
        role = server.role(proc)
        out["rss_mb"][role] = round(out["rss_mb"].get(role, 0.0) + full.rss / 2**20, 1)
        out["pss_mb"][role] = round(out["pss_mb"].get(role, 0.0) + getattr(full, "pss", 0) / 2**20, 1)
        if role == "worker":
            out["worker_threads"].append(threads)
    out["pss_total_mb"] = round(sum(out["pss_mb"].values()), 1)
    torch_threads = server.worker_torch_threads()
    if torch_threads is not None:  # only ours says how many torch threads each worker was given
        out["torch_threads"] = torch_threads
    return out


class CpuAccount:
    """CPU seconds over a load run: the machine's busy time against the server's tree and this process
    (the client), children they reaped included. The rest is foreign load, which disturbs the figures.
    Steal time (the hypervisor running other guests on our vCPUs) is reported apart."""

    def __init__(self, server: Sampled) -> None:
        self.server = server

    def _ours(self) -> float:
        total = 0.0
        for proc in [*process_tree(self.server.frontend_pid), psutil.Process()]:
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
        return total

    @staticmethod
    def _machine() -> tuple[float, float]:
        t = psutil.cpu_times()
        busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
        return busy, getattr(t, "steal", 0.0)

    def __enter__(self) -> CpuAccount:
        (self.busy0, self.steal0), self.ours0 = self._machine(), self._ours()
        return self

    def __exit__(self, *exc: object) -> None:
        busy, steal = self._machine()
        self.busy, self.steal = busy - self.busy0, steal - self.steal0
        self.ours = self._ours() - self.ours0

    def as_dict(self) -> dict[str, float]:
        return {
            "machine_busy_cpu_s": round(self.busy, 2),
            "server_and_client_cpu_s": round(self.ours, 2),
            "foreign_cpu_s": round(max(0.0, self.busy - self.ours), 2),
            "steal_s": round(self.steal, 2),
        }


class PeakRss:
    """Samples a child's peak RSS every 50 ms on a thread, from its own high-water mark.

    Not wait4's ``ru_maxrss``: Linux carries the pre-exec image (a copy of this benchmark process,
    torch and all) into it. ``VmHWM`` belongs to the post-exec process alone and only grows, so a
    sample misses at most the last 50 ms of growth; without ``/proc``, psutil's current RSS is polled.
    """

    INTERVAL = 0.05

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self.peak_kib = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> float | None:
        self._done.set()
        self._thread.join()
        return round(self.peak_kib / 1024, 1) if self.peak_kib else None

    def _loop(self) -> None:
        while not self._done.is_set():
            self.peak_kib = max(self.peak_kib, self._sample())
            self._done.wait(self.INTERVAL)

    def _sample(self) -> int:
        try:
            with open(f"/proc/{self._pid}/status") as fh:
                return next((int(ln.split()[1]) for ln in fh if ln.startswith("VmHWM:")), 0)
        except (OSError, ValueError):
            pass
        try:
            return int(psutil.Process(self._pid).memory_info().rss // 1024)
        except psutil.Error:  # the child already gone: nothing to add
            return 0
