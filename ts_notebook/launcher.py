"""Start, find, reuse and stop embedded backends. Returns typed outcomes and never prints.

Each backend gets a run folder under a per-user records folder (``$XDG_RUNTIME_DIR/ts_notebook``
or ``~/.cache/ts_notebook/run``, mode 0700), keyed by its model store and settings, so starting
the same thing twice reuses the live instance (checked with ``/ping``, never assumed from a stale
record). The child's output goes to a log file kept for error reports. Unless detached, the backend
exits when the process that started it (the kernel) exits.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ts_notebook.backend.info import INFO_FILE, BackendInfo
from ts_notebook.backend.ipc import records_dir
from ts_notebook.errors import BackendError
from ts_notebook.properties import read_properties

__all__ = ["INFO_FILE", "BackendInfo", "Failed", "LaunchSpec", "Outcome", "Reused", "Started", "TimedOut"]

# Backends this process started: kept so they are reaped (no zombies) and never garbage-collected while running.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
POLL_SECONDS = 0.005  # how often a starting backend's record is looked for (a cold start takes ~1.5 s)


@dataclass(frozen=True)
class Started:
    info: BackendInfo
    seconds: float
    process: subprocess.Popen[bytes] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Reused:
    info: BackendInfo


@dataclass(frozen=True)
class Failed:
    reason: str
    output: str
    exit_code: int | None = None


@dataclass(frozen=True)
class TimedOut:
    seconds: float
    output: str


Outcome = Started | Reused | Failed | TimedOut
# How an engine other than the embedded backend starts in a run folder: (spec, run_dir, timeout) -> outcome.
# The launcher only finds, reuses and records; which engine runs is the session's choice (session.py).
EngineStart = Callable[["LaunchSpec", Path, float], "Started | Failed | TimedOut"]


@dataclass
class LaunchSpec:
    """What to start; two specs with equal ``key()`` share one backend."""

    model_store: Path | None = None
    models: list[str] = field(default_factory=list)
    ts_config: Path | None = None
    gpus: str | None = None
    workers: int | None = None
    token_auth: bool = True
    detach: bool = False
    engine: str = "embedded"  # or "torchserve" (real TorchServe); session.py picks the engine that runs it

    def key(self) -> str:
        parts = [
            str(self.model_store.resolve()) if self.model_store else "",
            ",".join(self.models),
            self.ts_config.read_text() if self.ts_config and self.ts_config.is_file() else "",
            str(self.gpus),
            str(self.workers),
            str(self.token_auth),
        ] + ([self.engine] if self.engine != "embedded" else [])
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def is_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not count)."""
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False


def find(spec: LaunchSpec) -> BackendInfo | None:
    """The live backend for this spec, if one answers ``/ping``; stale records are removed."""
    run_dir = records_dir() / spec.key()
    try:
        info = BackendInfo.read(run_dir)
    except BackendError:  # a damaged record names no live backend we could talk to
        info = None
    if info is None:
        (run_dir / INFO_FILE).unlink(missing_ok=True)
        return None
    if is_alive(info.pid):
        try:
            if info.client().ping():
                return info
        except BackendError:
            pass
    (run_dir / INFO_FILE).unlink(missing_ok=True)
    return None


def _config_file(spec: LaunchSpec, run_dir: Path) -> Path:
    """The user's config.properties (if any), with port 0 where it names no address."""
    props: dict[str, str] = {}
    if spec.ts_config is not None:
        props = read_properties(spec.ts_config)
    for key in ("inference_address", "management_address", "metrics_address"):
        props.setdefault(key, "http://127.0.0.1:0")
    if spec.workers is not None:
        props["default_workers_per_model"] = str(spec.workers)
    path = run_dir / "config.properties"
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    return path


def command(spec: LaunchSpec, run_dir: Path) -> list[str]:
    """The backend's command line for ``spec``."""
    argv = [
        sys.executable,
        "-m",
        "ts_notebook.backend",
        "--run-dir",
        str(run_dir),
        "--ts-config",
        str(_config_file(spec, run_dir)),
        "--enable-model-api",
    ]
    if spec.model_store is not None:
        argv += ["--model-store", str(spec.model_store)]
    if spec.models:
        argv += ["--models", *spec.models]
    if spec.gpus is not None:
        argv += ["--gpus", spec.gpus]
    if not spec.token_auth:
        argv.append("--disable-token-auth")
    if not spec.detach:
        argv += ["--parent-pid", str(os.getpid())]
    return argv


def start(
    spec: LaunchSpec, *, timeout: float = 120.0, argv: list[str] | None = None, engine: EngineStart | None = None
) -> Outcome:
    """Reuse the live backend for ``spec`` or start one and wait until it serves.

    ``argv`` replaces the backend command (tests start stub backends with it). ``engine`` starts a
    backend other than the embedded one in the run folder (``session.start_backend`` passes real
    TorchServe's); a live one is reused either way.

    Raises:
        ValueError: ``spec`` names an engine other than the embedded one and no ``engine`` is given.
    """
    if spec.engine != "embedded" and engine is None:
        raise ValueError(f"the launcher starts only the embedded backend; start {spec.engine!r} through session.py")
    existing = find(spec)
    if existing is not None:
        return Reused(existing)
    run_dir = records_dir() / spec.key()
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if engine is not None:
        return engine(spec, run_dir, timeout)
    # The run folder as working dir: ``python -m`` puts the working dir first on sys.path, and a
    # notebook's folder may hold anything, even a folder named ts_notebook.
    return spawn(argv or command(spec, run_dir), run_dir, timeout=timeout, new_session=True, cwd=run_dir)


def spawn(
    argv: list[str],
    run_dir: Path,
    *,
    timeout: float = 120.0,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    new_session: bool = False,
    cwd: Path | None = None,
) -> Started | Failed | TimedOut:
    """Run a backend command and wait until it writes its record in ``run_dir``.

    The one place that knows "a backend is serving once ``backend.json`` names its pid"; the
    launcher, the tests and the benchmarks all start backends through it. The child's output goes
    to ``log_path`` (default ``run_dir/backend.log``) and comes back in ``Failed``/``TimedOut``.
    A child that is still starting after ``timeout`` seconds is stopped.
    """
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    (run_dir / INFO_FILE).unlink(missing_ok=True)
    log_path = log_path or run_dir / "backend.log"
    began = time.monotonic()
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=new_session,
        )
    _CHILDREN[process.pid] = process
    while True:
        try:
            info = BackendInfo.read(run_dir)
        except BackendError as exc:
            _terminate(process.pid, 5.0)
            return Failed(str(exc), _tail(log_path))
        if info is not None and info.pid == process.pid:
            return Started(info, time.monotonic() - began, process)
        code = process.poll()
        if code is not None:
            _CHILDREN.pop(process.pid, None)
            output = _tail(log_path)
            return Failed(_explain(output, code), output, code)
        if time.monotonic() - began > timeout:
            _terminate(process.pid, 5.0)
            return TimedOut(timeout, _tail(log_path))
        time.sleep(POLL_SECONDS)


def _tail(path: Path, limit: int = 8000) -> str:
    with contextlib.suppress(OSError):
        return path.read_bytes()[-limit:].decode("utf-8", "replace")
    return ""


def _explain(output: str, code: int) -> str:
    """The child's own last error line, plus what to do about a busy port."""
    import re

    busy = re.search(r"address \('?([\d.]+)'?, (\d+)\).*address already in use", output) or re.search(
        r"\[Errno 98\].*?(\d+\.\d+\.\d+\.\d+)?:?(\d+)", output
    )
    if busy and busy.group(2):
        port = int(busy.group(2))
        owner = port_owner(port)
        who = f" by pid {owner}" if owner else ""
        return f"port {port} is taken{who}; pass --ts-config with other ports (or port 0), or stop that process"
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else "no output"
    return f"the backend exited with code {code}: {last}"


def port_owner(port: int) -> int | None:
    """The pid listening on a TCP port, if this user can see it."""
    try:
        import psutil
    except ImportError:
        return None
    with contextlib.suppress(Exception):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == "LISTEN" and conn.pid:
                return int(conn.pid)
    return None


def _terminate(pid: int, grace: float) -> bool:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL. True when the process is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not is_alive(pid):
            _reap(pid)
            return True
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    _reap(pid)
    return not is_alive(pid)


def _reap(pid: int) -> None:
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(1)


def stop(info: BackendInfo, *, grace: float = 10.0) -> bool:
    """Stop an embedded backend gracefully (it stops its workers), then forcefully. True when it is gone.

    Raises:
        ValueError: ``info`` is another engine's (``session.stop_backend`` stops any engine).
    """
    if not info.embedded:
        raise ValueError(f"the launcher stops only embedded backends; stop {info.engine!r} through session.py")
    gone = _terminate(info.pid, grace)
    if gone:
        info.remove()
    return gone


def started_here(info: BackendInfo) -> bool:
    """Whether this process started ``info``'s backend (and still holds its process)."""
    return info.pid in _CHILDREN


def running() -> list[BackendInfo]:
    """Every live backend this user started."""
    out = []
    for run_dir in sorted(records_dir().iterdir()):
        with contextlib.suppress(BackendError):
            info = BackendInfo.read(run_dir)
            if info is not None and is_alive(info.pid):
                out.append(info)
    return out
