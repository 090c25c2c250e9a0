"""Our backend as a subprocess for the differential suite: port 0, its own run dir, stopped by pid."""

from __future__ import annotations

import contextlib
import http.client as httplib
import os
import shutil
import signal
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from ts_notebook import launcher
from ts_notebook.deploy.torchserve import TorchServe


class EmbeddedBackend:
    def __init__(self, root: Path, *extra: str, properties: dict[str, str] | None = None) -> None:
        self.root = root
        self.store = root / "store"
        self.run_dir = root / "run"
        self.store.mkdir(parents=True, exist_ok=True)
        cfg = root / "config.properties"
        props = {f"{k}_address": "http://127.0.0.1:0" for k in ("inference", "management", "metrics")}
        cfg.write_text("".join(f"{k}={v}\n" for k, v in {**props, **(properties or {})}.items()))
        outcome = launcher.spawn(
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
            self.run_dir,
            timeout=60,
            log_path=root / "backend.log",
        )
        if not isinstance(outcome, launcher.Started) or outcome.process is None:
            raise RuntimeError(f"backend did not start: {outcome}")
        self.process = outcome.process
        self.info = outcome.info
        self.inference_url = self.info.inference_address
        self.management_url = self.info.management_address

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


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


@contextlib.contextmanager
def side_by_side(
    ts_ref_venv: Path,
    root: Path,
    archives: list[Path],
    properties: dict[str, str] | None = None,
    registrations: tuple[str, ...] = (),
) -> Iterator[tuple[TorchServe, EmbeddedBackend]]:
    """Real TorchServe and our backend with the same config.properties entries and the same archives in
    their stores, each given the same registration queries (``url=...&...``); both stopped at the end."""
    ts = TorchServe(ts_ref_venv, config=properties, startup_timeout=120)
    ours = EmbeddedBackend(root, "--disable-token-auth", "--enable-model-api", properties=properties)
    ts.store.mkdir(parents=True, exist_ok=True)
    for archive in archives:
        for store in (ts.store, ours.store):
            copy = shutil.copytree if archive.is_dir() else shutil.copy
            copy(archive, store / archive.name)
    try:
        ts.start()
        for base in (ts.management_url, ours.management_url):
            for query in registrations:
                status, body, _ = http("POST", f"{base}/models?{query}")
                assert status == 200, (base, query, body)
        yield ts, ours
    finally:
        ts.stop()
        ours.stop()
