"""Our backend as a subprocess for the differential suite: port 0, its own run dir, stopped by pid."""

from __future__ import annotations

import http.client as httplib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any


class EmbeddedBackend:
    def __init__(self, root: Path, *extra: str) -> None:
        self.root = root
        self.store = root / "store"
        self.run_dir = root / "run"
        self.store.mkdir(parents=True, exist_ok=True)
        cfg = root / "config.properties"
        cfg.write_text("".join(f"{k}_address=http://127.0.0.1:0\n" for k in ("inference", "management", "metrics")))
        self.log = open(root / "backend.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ts_notebook.backend",
                "--model-store",
                str(self.store),
                "--ts-config",
                str(cfg),
                "--run-dir",
                str(self.run_dir),
                *extra,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        info = self.run_dir / "backend.json"
        deadline = time.monotonic() + 60
        while not info.is_file():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"backend did not start:\n{(root / 'backend.log').read_text()}")
            time.sleep(0.02)
        self.info: dict[str, Any] = json.loads(info.read_text())
        self.inference_url = self.info["inference_address"]
        self.management_url = self.info["management_address"]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 60.0
) -> tuple[int, bytes, dict[str, str]]:
    """Any HTTP call, answering (status, body, lower-cased headers) for errors too.

    http.client sends header names exactly as given (urllib would turn ``x-mode`` into ``X-mode``,
    and TorchServe's header lookups are case-sensitive).
    """
    parts = urllib.parse.urlsplit(url)
    conn = httplib.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, target, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()
