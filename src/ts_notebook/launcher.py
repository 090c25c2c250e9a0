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
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ts_notebook.client import Client
from ts_notebook.errors import BackendError

INFO_FILE = "backend.json"
# Backends this process started: kept so they are reaped (no zombies) and never garbage-collected while running.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class BackendInfo:
    """A running backend: where it listens and how to reach it."""

    pid: int
    run_dir: Path
    inference_address: str
    management_address: str
    metrics_address: str
    key_file: Path | None
    model_store: str | None = None

    @classmethod
    def read(cls, run_dir: Path) -> BackendInfo | None:
        try:
            data = json.loads((run_dir / INFO_FILE).read_text())
        except (OSError, ValueError):
            return None
        return cls(
            int(data["pid"]),
            run_dir,
            data["inference_address"],
            data["management_address"],
            data["metrics_address"],
            Path(data["key_file"]) if data.get("key_file") else None,
            data.get("model_store"),
        )

    def client(self) -> Client:
        return Client.from_key_file(
            self.inference_address, self.management_address, self.metrics_address, self.key_file
        )


@dataclass(frozen=True)
class Started:
    info: BackendInfo
    seconds: float


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


def records_dir() -> Path:
    """The per-user folder holding every backend's run folder (never a world-writable one)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) / "ts_notebook" if runtime else Path.home() / ".cache" / "ts_notebook" / "run"
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    base.chmod(0o700)
    return base


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

    def key(self) -> str:
        parts = [
            str(self.model_store.resolve()) if self.model_store else "",
            ",".join(self.models),
            self.ts_config.read_text() if self.ts_config and self.ts_config.is_file() else "",
            str(self.gpus),
            str(self.workers),
            str(self.token_auth),
        ]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def _alive(pid: int) -> bool:
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
    info = BackendInfo.read(run_dir)
    if info is None:
        return None
    if _alive(info.pid):
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
        from ts_notebook.backend.config import read_properties

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


def start(spec: LaunchSpec, *, timeout: float = 120.0, argv: list[str] | None = None) -> Outcome:
    """Reuse the live backend for ``spec`` or start one and wait until it serves.

    ``argv`` replaces the backend command (tests start stub backends with it).
    """
    existing = find(spec)
    if existing is not None:
        return Reused(existing)
    run_dir = records_dir() / spec.key()
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    (run_dir / INFO_FILE).unlink(missing_ok=True)
    log_path = run_dir / "backend.log"
    began = time.monotonic()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            argv or command(spec, run_dir),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _CHILDREN[process.pid] = process
    while True:
        info = BackendInfo.read(run_dir)
        if info is not None and info.pid == process.pid:
            return Started(info, time.monotonic() - began)
        code = process.poll()
        if code is not None:
            _CHILDREN.pop(process.pid, None)
            output = _tail(log_path)
            return Failed(_explain(output, code), output, code)
        if time.monotonic() - began > timeout:
            _terminate(process.pid, 5.0)
            return TimedOut(timeout, _tail(log_path))
        time.sleep(0.02)


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
        if not _alive(pid):
            _reap(pid)
            return True
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    _reap(pid)
    return not _alive(pid)


def _reap(pid: int) -> None:
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(1)


def stop(info: BackendInfo, *, grace: float = 10.0) -> bool:
    """Stop a backend gracefully (it stops its workers), then forcefully. True when it is gone."""
    gone = _terminate(info.pid, grace)
    if gone:
        (info.run_dir / INFO_FILE).unlink(missing_ok=True)
    return gone


def running() -> list[BackendInfo]:
    """Every live backend this user started."""
    out = []
    for run_dir in sorted(records_dir().iterdir()):
        info = BackendInfo.read(run_dir)
        if info is not None and _alive(info.pid):
            out.append(info)
    return out
