"""The floor benchmark's servers beyond ``servers.py``: TorchServe tuned (one torch thread per worker),
LitServe in its own venv, a bare HTTP server (the round trip with no model), and the in-process floor
(the same handler called in a loop, no server at all).

Every process is started here, tracked by pid and creation time, and stopped by pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
from common import WORK
from loadgen import call
from servers import RefServer

HERE = Path(__file__).resolve().parent
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def ts_server(venv: Path, config: dict[str, str], overlay: Path | None, tuned: bool) -> RefServer:
    """TorchServe with its defaults, or tuned as its performance guide says for a CPU host: one
    OpenMP/MKL thread per worker (the JVM passes its environment on to the workers)."""
    server = RefServer(venv, config, overlay)
    if not tuned:
        return server
    server.kind = "ts_tuned"
    server.extra_env = dict(THREAD_ENV)
    return server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Tracked:
    """A process tree started here: remembered by (pid, create time), stopped by pid."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None
        self.root = Path(tempfile.mkdtemp(prefix="tsb-fl-"))

    def _launch(self, cmd: list[str], env: dict[str, str]) -> None:
        log = (self.root / "server.log").open("wb")
        self.process = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
        self.pid = self.process.pid

    def _wait_http(self, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                break
            with contextlib.suppress(OSError):
                if call("GET", url, timeout=5)[0] == 200:
                    return
            time.sleep(0.1)
        tail = (self.root / "server.log").read_text(errors="replace")[-3000:]
        self.stop()
        raise RuntimeError(f"{type(self).__name__} did not serve {url}:\n{tail}")

    @property
    def frontend_pid(self) -> int | None:
        return self.pid

    def worker_torch_threads(self) -> list[int] | None:
        return None

    def stop(self) -> None:
        tracked: list[tuple[int, float]] = []
        if self.pid is not None:
            with contextlib.suppress(psutil.Error):
                main = psutil.Process(self.pid)
                tracked = [(p.pid, p.create_time()) for p in [main, *main.children(recursive=True)]]
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
        for pid, created in tracked:  # LitServe's workers outlive a SIGTERM to their parent
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if proc.create_time() == created:
                    proc.kill()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = self.pid = None
        shutil.rmtree(self.root, ignore_errors=True)


def litserve_venv() -> Path | None:
    venv = Path(os.environ.get("TS_LITSERVE_VENV") or HERE.parent / ".venv-litserve")
    return venv if (venv / "bin" / "python").is_file() else None


def litserve_runtime() -> Path:
    """A copy of our handler runtime (``ts_notebook.deploy.vendor``) for LitServe's PYTHONPATH."""
    from ts_notebook.deploy.vendor import copy_runtime

    dest = WORK / "litserve-runtime"
    shutil.rmtree(dest, ignore_errors=True)
    copy_runtime(dest)
    return dest


class LitServer(_Tracked):
    """LitServe 0.2.19 serving an archive through our handler runtime (``litserve_app.py``)."""

    kind = "litserve"

    def __init__(self, venv: Path, runtime: Path, archive: Path, workers: int, batch: int) -> None:
        super().__init__()
        self.venv, self.runtime, self.archive = venv, runtime, archive
        self.workers, self.batch = workers, batch
        self.port = free_port()
        self.inference_url = f"http://127.0.0.1:{self.port}"
        self.predict_path = "/predict"

    def start(self) -> LitServer:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env |= {"PYTHONPATH": str(self.runtime), "HF_HUB_OFFLINE": "1", "TMPDIR": str(self.root)} | THREAD_ENV
        cmd = [str(self.venv / "bin" / "python"), str(HERE / "litserve_app.py"), str(self.archive), str(self.port)]
        self._launch([*cmd, str(self.workers), str(self.batch)], env)
        self._wait_http(f"{self.inference_url}/health", 180)
        return self

    def role(self, proc: psutil.Process) -> str:
        """The main process and its forked uvicorn API servers are the front end; LitServe starts its
        inference workers with multiprocessing's spawn."""
        with contextlib.suppress(psutil.Error):
            cmd = " ".join(proc.cmdline())
            if "resource_tracker" in cmd:
                return "other"
            if "multiprocessing.spawn" in cmd:
                return "worker"
        return "frontend"


class HttpFloor(_Tracked):
    """A bare aiohttp server answering every POST with a fixed body: the HTTP round trip alone."""

    kind = "http_floor"

    def __init__(self, answer: bytes) -> None:
        super().__init__()
        self.answer = answer
        self.port = free_port()
        self.inference_url = f"http://127.0.0.1:{self.port}"
        self.predict_path = "/predict"

    def start(self) -> HttpFloor:
        (self.root / "answer").write_bytes(self.answer)
        cmd = [sys.executable, str(HERE / "http_floor_app.py"), str(self.port), str(self.root / "answer")]
        self._launch(cmd, dict(os.environ))
        self._wait_http(f"{self.inference_url}/ping", 30)
        return self

    def role(self, proc: psutil.Process) -> str:
        return "frontend" if proc.pid == self.pid else "other"


def run_floor(archive: Path, body: bytes, workers: int, batch: int, seconds: float, rounds: int) -> dict[str, Any]:
    """The in-process floor: ``workers`` processes at once, each one torch thread, calling the handler with
    batches of ``batch`` copies of the request, ``rounds`` rounds of ``seconds`` (``floor_runner.py``)."""
    with tempfile.TemporaryDirectory(prefix="tsb-floor-") as tmp:
        (Path(tmp) / "body").write_bytes(body)
        cmd = [sys.executable, str(HERE / "floor_runner.py"), str(archive), str(Path(tmp) / "body")]
        env = dict(os.environ, HF_HUB_OFFLINE="1", TMPDIR=tmp) | THREAD_ENV
        out = subprocess.run(
            [*cmd, str(workers), str(batch), str(seconds), str(rounds)],
            env=env, capture_output=True, text=True, timeout=300 + rounds * (seconds + 120),
        )  # fmt: skip
    line = next((x for x in out.stdout.splitlines() if x.startswith("FLOOR ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"the in-process floor failed: {out.stderr[-2000:]}")
    return dict(json.loads(line[len("FLOOR ") :]))
