"""Helpers for the backend tests: a tiny HTTP client on ``http.client`` (it keeps header names in
the exact case given, and never consults proxy settings), a handle on a real backend subprocess,
polling with a deadline, and archive building."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from ts_notebook import launcher
from ts_notebook.archive.build import build_archive
from ts_notebook.backend.info import BackendInfo
from ts_notebook.records import EventPage, WorkerView
from ts_notebook.records_json import page_from_json, workers_from_json

HANDLERS = Path(__file__).parent / "handlers"
PROBE = HANDLERS / "probe_handler.py"
T = TypeVar("T")


@dataclass
class Reply:
    status: int
    reason: str
    headers: dict[str, str]  # lower-cased names
    header_list: list[tuple[str, str]]
    body: bytes
    elapsed: float = 0.0

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def call(
    method: str,
    url: str,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Reply:
    """One HTTP exchange on a fresh connection; header names are sent exactly as given."""
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    start = time.perf_counter()
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        data = response.read()
        header_list = response.getheaders()
        return Reply(
            response.status,
            response.reason,
            {k.lower(): v for k, v in header_list},
            header_list,
            data,
            time.perf_counter() - start,
        )
    finally:
        conn.close()


def error_body(code: int, kind: str, message: str) -> bytes:
    """TorchServe's error body: pretty JSON, 2-space indent, trailing newline."""
    return (json.dumps({"code": code, "type": kind, "message": message}, indent=2) + "\n").encode()


def status_body(text: str) -> bytes:
    return (json.dumps({"status": text}, indent=2) + "\n").encode()


def wait_until(predicate: Callable[[], T], timeout: float = 15.0, what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last value: {value!r})")
        time.sleep(0.02)


def build(store: Path, name: str, version: str = "1.0", yaml_text: str | None = None, subdir: str = "") -> str:
    """Build ``name``.mar around the probe handler; return its url relative to ``store``."""
    export = store / subdir if subdir else store
    export.mkdir(parents=True, exist_ok=True)
    config = None
    if yaml_text is not None:
        src = store.parent / "yaml" / f"{name}-{version}"
        src.mkdir(parents=True, exist_ok=True)
        (src / "model-config.yaml").write_text(yaml_text)
        config = str(src / "model-config.yaml")
    build_archive(name, version, str(PROBE), config_file=config, export_path=export)
    return f"{subdir}/{name}.mar" if subdir else f"{name}.mar"


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running (not zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@dataclass
class Backend:
    """A running ``python -m ts_notebook.backend`` and what it announced in backend.json."""

    process: subprocess.Popen[bytes]
    run_dir: Path
    store: Path
    log_path: Path
    info: BackendInfo
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def inference(self) -> str:
        return self.info.inference_address

    @property
    def management(self) -> str:
        return self.info.management_address

    @property
    def metrics(self) -> str:
        return self.info.metrics_address

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def auth(self, which: str, headers: dict[str, str] | None = None) -> dict[str, str]:
        out = dict(headers or {})
        if which in self.keys:
            out["Authorization"] = f"Bearer {self.keys[which]}"
        return out

    # -- inference -----------------------------------------------------------------------
    def predict(
        self,
        model: str,
        body: bytes | str | None = b"{}",
        mode: str | None = None,
        headers: dict[str, str] | None = None,
        content_type: str | None = "application/json",
        path: str | None = None,
        timeout: float = 30.0,
        method: str = "POST",
    ) -> Reply:
        h: dict[str, str] = {}
        if content_type is not None:
            h["Content-Type"] = content_type
        if mode is not None:
            h["X-Mode"] = mode
        h.update(headers or {})
        url = self.inference + (path or f"/predictions/{model}")
        return call(method, url, body, self.auth("inference", h), timeout)

    # -- management ----------------------------------------------------------------------
    def mgmt(self, method: str, path: str, params: dict[str, Any] | None = None, timeout: float = 60.0) -> Reply:
        query = ("?" + urlencode(params)) if params else ""
        return call(method, self.management + path + query, None, self.auth("management"), timeout)

    def register(self, url: str, **params: Any) -> Reply:
        return self.mgmt("POST", "/models", {"url": url, **params})

    def describe(self, name: str, version: str | None = None) -> list[dict[str, Any]]:
        reply = self.mgmt("GET", f"/models/{name}" + (f"/{version}" if version else ""))
        assert reply.status == 200, reply.body
        result: list[dict[str, Any]] = reply.json()
        return result

    def workers(self, name: str | None = None) -> list[WorkerView]:
        reply = self.mgmt("GET", "/ts_notebook/workers")
        assert reply.status == 200, reply.body
        return [w for v in workers_from_json(reply.json()) if name is None or v.model == name for w in v.workers]

    def events(self, **params: Any) -> EventPage:
        reply = self.mgmt("GET", "/ts_notebook/events", params)
        assert reply.status == 200, reply.body
        return page_from_json(reply.json())

    def call_ok(self) -> bool:
        """Whether /ping answers 200 (the server is up and answering)."""
        return call("GET", self.inference + "/ping", None, self.auth("inference"), 10).status == 200

    def ready_pids(self, name: str) -> list[int]:
        return sorted(w["pid"] for w in self.describe(name)[0]["workers"] if w["status"] == "READY")

    def worker_pids(self) -> list[int]:
        try:
            return [w.pid for w in self.workers() if w.pid > 0]
        except (OSError, AssertionError):
            return []

    # -- life cycle ----------------------------------------------------------------------
    def stop(self) -> None:
        """SIGTERM the backend we started, wait for it, and check that its zygote and workers are gone.

        The zygote and the workers forked from it carry this backend's own run dir in their command
        line, which is how they are found (and, if one outlived the backend, killed) here.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while (left := self.descendants()) and time.monotonic() < deadline:
            time.sleep(0.02)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, f"processes {left} outlived the backend"
        assert self.process.returncode == 0, f"backend exited with {self.process.returncode}:\n{self.log()}"
        assert not (self.run_dir / "backend.json").exists(), "backend.json left behind after a clean stop"

    def descendants(self) -> list[int]:
        """Live processes whose command line names this backend's run dir (its zygote and workers)."""
        marker = str(self.run_dir).encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == self.process.pid:
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker in cmdline and alive(int(entry.name)):
                found.append(int(entry.name))
        return found


def start_backend(
    root: Path,
    store: Path,
    properties: dict[str, str],
    args: list[str],
    env_extra: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> Backend:
    """Start a backend on free loopback ports and wait for its backend.json."""
    run_dir = root / "run"
    root.mkdir(parents=True, exist_ok=True)
    config = root / "config.properties"
    props = {
        "inference_address": "http://127.0.0.1:0",
        "management_address": "http://127.0.0.1:0",
        "metrics_address": "http://127.0.0.1:0",
        **properties,
    }
    config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    env = {k: v for k, v in os.environ.items() if k != "TS_NOTEBOOK_GPU_COUNT"}
    env.update(env_extra or {})
    log_path = root / "backend.log"
    command = [
        sys.executable,
        "-m",
        "ts_notebook.backend",
        "--model-store",
        str(store),
        "--ts-config",
        str(config),
        "--run-dir",
        str(run_dir),
        *args,
    ]
    outcome = launcher.spawn(command, run_dir, timeout=timeout, env=env, log_path=log_path, cwd=root)
    if isinstance(outcome, launcher.Failed):
        raise AssertionError(f"backend exited with {outcome.exit_code} before serving:\n{outcome.output}")
    if isinstance(outcome, launcher.TimedOut):
        raise AssertionError(f"backend did not write backend.json within {timeout} s:\n{outcome.output}")
    assert outcome.process is not None
    backend = Backend(outcome.process, run_dir, store, log_path, outcome.info)
    if outcome.info.key_file is not None:
        keys = json.loads(outcome.info.key_file.read_text())
        backend.keys = {"inference": keys["inference"]["key"], "management": keys["management"]["key"]}
        backend.keys["api"] = keys["API"]["key"]
    return backend
