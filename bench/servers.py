"""The two servers under test, behind one small interface (start, stop, URLs, process roles, store),
and the management calls the benchmark makes on either.

- ``RefServer``: real TorchServe through ``ts_notebook.deploy.torchserve`` (own ports, root folder,
  TMPDIR), so the benchmark runs TorchServe exactly as the compatibility tests do;
- ``OurServer``: our backend, started through ``ts_notebook.launcher.spawn`` (the one place that knows
  when a backend serves: its ``backend.json`` names its pid), port 0 everywhere, its own root folder.

Both are stopped by pid, their whole process tree included.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import psutil  # type: ignore[import-untyped]
from loadgen import call
from sampling import process_tree

from ts_notebook import launcher
from ts_notebook.deploy.torchserve import TorchServe


def _env_common(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "TS_CONFIG_FILE")}
    env["TMPDIR"] = env["TEMP"] = env["TMP"] = str(tmp)
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_NO_ADVISORY_WARNINGS"] = "1"
    # BENCH_OURS_SOURCE: another checkout's folder holding ts_notebook/, to measure its backend ("before").
    if os.environ.get("BENCH_OURS_SOURCE"):
        source = Path(os.environ["BENCH_OURS_SOURCE"])
        if not (source / "ts_notebook" / "backend").is_dir():  # else the installed one would run, mislabelled
            raise SystemExit(f"BENCH_OURS_SOURCE={source} holds no ts_notebook/backend: point it at a checkout's root")
        env["PYTHONPATH"] = str(source)
    return env


class RefServer(TorchServe):
    """Real TorchServe: the compat suite's isolated instance, plus the transformers overlay on PYTHONPATH."""

    kind = "ts"

    def __init__(self, venv: Path, config: dict[str, str], overlay: Path | None) -> None:
        super().__init__(venv, config=config, startup_timeout=120.0)
        self.overlay = overlay

    def _env(self) -> dict[str, str]:
        env = super()._env()
        env["HF_HUB_OFFLINE"] = "1"
        env["TRANSFORMERS_NO_ADVISORY_WARNINGS"] = "1"
        if self.overlay is not None:
            env["PYTHONPATH"] = str(self.overlay)  # the JVM passes it on to the workers after model_dir
        return env

    @property
    def frontend_pid(self) -> int | None:
        return self.pid

    def role(self, proc: psutil.Process) -> str:
        if proc.pid == self.pid:
            return "frontend"
        with contextlib.suppress(psutil.Error):
            if any(part.endswith("model_service_worker.py") for part in proc.cmdline()):
                return "worker"
        return "other"

    def worker_torch_threads(self) -> list[int] | None:
        return None  # TorchServe's workers keep torch's default thread count and do not report it

    def log_tail(self) -> str:
        return self.logs(40, ("model_log.log", "ts_log.log"))


class OurServer:
    """Our backend as a subprocess: port 0 everywhere, its own root (run dir, store, TMPDIR); stopped by pid."""

    kind = "ours"

    def __init__(
        self,
        config: dict[str, str],
        models: list[str] | None = None,
        runner: list[str] | None = None,
        wrapper: list[str] | None = None,
    ) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tsb-ours-"))
        self.store, self.run_dir, self.tmp = self.root / "store", self.root / "run", self.root / "tmp"
        for folder in (self.store, self.tmp):
            folder.mkdir()
        props = {f"{k}_address": "http://127.0.0.1:0" for k in ("inference", "management", "metrics")} | config
        self.config_path = self.root / "config.properties"
        self.config_path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        self.models = models or []
        # What runs the backend in place of ``-m ts_notebook.backend`` (request_path.py's profiler), and a
        # command the interpreter runs under (request_path.py's valgrind).
        self.runner = runner or ["-m", "ts_notebook.backend"]
        self.wrapper = wrapper or []
        self.process: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None
        self.inference_url = self.management_url = ""
        self._tracked: list[tuple[int, float]] = []

    def start(self) -> OurServer:
        """Launch the backend and return once it serves (``launcher.spawn``: its record names its pid)."""
        cmd = [
            *self.wrapper, sys.executable, *self.runner,
            "--model-store", str(self.store), "--ts-config", str(self.config_path), "--run-dir", str(self.run_dir),
            "--disable-token-auth", "--enable-model-api",
        ]  # fmt: skip
        if self.models:
            cmd += ["--models", *self.models]
        log = self.root / "backend.log"
        outcome = launcher.spawn(
            cmd, self.run_dir, timeout=600.0 if self.wrapper else 120.0, env=_env_common(self.tmp), log_path=log
        )
        if isinstance(outcome, (launcher.Failed, launcher.TimedOut)):
            why = outcome.reason if isinstance(outcome, launcher.Failed) else f"not serving after {outcome.seconds} s"
            tail = self.log_tail()
            self.stop()  # spawn has stopped the backend already; this removes the root
            raise RuntimeError(f"our backend did not start ({why}):\n{tail}")
        assert outcome.process is not None  # spawn always hands back the process it started
        self.process, self.pid = outcome.process, outcome.process.pid
        self.inference_url, self.management_url = outcome.info.inference_address, outcome.info.management_address
        return self

    @property
    def frontend_pid(self) -> int | None:
        return self.pid

    def role(self, proc: psutil.Process) -> str:
        if proc.pid == self.pid:
            return "frontend"
        with contextlib.suppress(psutil.Error):
            # Workers are forked from the zygote: same command line, but the zygote is their parent.
            if "ts_notebook.backend.zygote" in proc.cmdline():
                return "zygote" if proc.ppid() == self.pid else "worker"
        return "other"

    def worker_torch_threads(self) -> list[int] | None:
        """The torch thread count each worker was given (ours divide the cores between the workers)."""
        _, view = call("GET", f"{self.management_url}/ts_notebook/workers")
        return [w["threads"] for m in json.loads(view) for w in m["workers"]]

    def log_tail(self) -> str:
        path = self.root / "backend.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-40:]) if path.is_file() else "(no log)"

    def stop(self) -> None:
        """SIGTERM to the backend, wait for it and every process of its tree to go; SIGKILL what is left."""
        if self.process is not None:
            for proc in process_tree(self.pid):
                with contextlib.suppress(psutil.Error):
                    self._tracked.append((proc.pid, proc.create_time()))
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(20)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            deadline = time.monotonic() + 10
            while self._alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            for pid, created in self._alive():
                with contextlib.suppress(psutil.Error):
                    proc = psutil.Process(pid)
                    if proc.create_time() == created:
                        proc.kill()
            self.process = None
        shutil.rmtree(self.root, ignore_errors=True)

    def _alive(self) -> list[tuple[int, float]]:
        alive = []
        for pid, created in self._tracked:
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append((pid, created))
        return alive

    def _stage(self, archive: Path) -> str:
        dest = self.store / archive.name
        if not dest.exists():
            try:
                os.link(archive, dest)
            except OSError:  # another file system
                shutil.copy2(archive, dest)
        return archive.name


Server = RefServer | OurServer


def stage(server: Server, archive: Path) -> str:
    """Put the archive in the server's model store (hard link or copy); its name there."""
    if isinstance(server, RefServer):
        server.store.mkdir(parents=True, exist_ok=True)
        return server._stage(archive)
    return server._stage(archive)


def register(server: Server, url: str, name: str, workers: int) -> tuple[int, bytes]:
    query = urllib.parse.urlencode(
        {"url": url, "model_name": name, "initial_workers": str(workers), "synchronous": "true"}
    )
    return call("POST", f"{server.management_url}/models?{query}", timeout=300)


def unregister(server: Server, name: str) -> int:
    return call("DELETE", f"{server.management_url}/models/{urllib.parse.quote(name)}", timeout=120)[0]


def first_prediction(server: Server, name: str, body: bytes, timeout: float = 120.0) -> tuple[float | None, int]:
    """Poll /predictions/NAME every 10 ms until HTTP 200; (perf_counter at the 200, attempts)."""
    deadline = time.monotonic() + timeout
    attempts = 0
    while time.monotonic() < deadline:
        attempts += 1
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, _ = call("POST", f"{server.inference_url}/predictions/{name}", body, timeout=timeout)
            if status == 200:
                return time.perf_counter(), attempts
        time.sleep(0.01)
    return None, attempts
