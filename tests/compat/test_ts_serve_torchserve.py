"""``%ts_serve start --torchserve``: one notebook flow run against the embedded backend and against real
TorchServe 0.12.0, answer by answer; the notebook-only extras say they need the embedded backend; a
missing TorchServe or Java is a clear failure saying what to install."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from tests.assets import build_tiny
from tests.shells import notebook_shell
from ts_notebook import launcher
from ts_notebook.deploy.launch import ENV_VAR
from ts_notebook.session import start_backend

PAYLOADS = ('{"input": [1, 2, 3, 4]}', '{"input": [0, 0, 0, 1]}')
DESCRIBED = ("modelName", "modelVersion", "minWorkers", "maxWorkers", "batchSize", "maxBatchDelay", "responseTimeout")


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short folder: TorchServe's unix socket paths under the run folder must fit in 107 bytes."""
    folder = Path(tempfile.mkdtemp(prefix="tsn-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def ready_workers(shell: InteractiveShell, model: str, count: int) -> list[str]:
    """The workers' statuses once ``count`` are READY (TorchServe starts scaled workers after answering)."""
    deadline = time.monotonic() + 60
    while True:
        statuses = sorted(w["status"] for w in shell.run_line_magic("ts_serve", f"describe {model}")[0]["workers"])
        if statuses.count("READY") >= count or time.monotonic() > deadline:
            return statuses
        time.sleep(0.2)


def flow(shell: InteractiveShell, archive: Path, engine: str) -> dict[str, Any]:
    """What a notebook does with a server, and every answer it gets."""
    out: dict[str, Any] = {}
    status = shell.run_line_magic("ts_serve", f"start {engine} --models tiny={archive}")
    out["models at start"] = [m["modelName"] for m in status.models]
    out["predictions"] = [shell.run_line_magic("ts_serve", f"predict tiny '{p}'") for p in PAYLOADS]
    out["describe"] = {k: shell.run_line_magic("ts_serve", "describe tiny")[0][k] for k in DESCRIBED}
    out["scale"] = shell.run_line_magic("ts_serve", "scale tiny --min-workers 2")
    out["workers after scale"] = ready_workers(shell, "tiny", 2)
    out["register"] = shell.run_line_magic("ts_serve", f"register {archive} --name tiny2 --batch-size 2")
    out["tiny2 batch"] = shell.run_line_magic("ts_serve", "describe tiny2")[0]["batchSize"]
    out["tiny2 prediction"] = shell.run_line_magic("ts_serve", f"predict tiny2 '{PAYLOADS[0]}'")
    out["unregister"] = shell.run_line_magic("ts_serve", "unregister tiny2")
    metrics = shell.run_line_magic("ts_serve", "metrics tiny").text
    out["requests counted"] = next(
        float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith("ts_inference_requests_total")
    )
    client = shell.run_line_magic("ts_serve", "client")
    out["ping"] = client.ping()
    out["status models"] = [m["modelName"] for m in shell.run_line_magic("ts_serve", "status").models]
    return out


def test_one_notebook_flow_answers_the_same_on_both_backends(
    ts_ref_venv: Path, model_assets: Path, short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = build_tiny(model_assets, short_dir / "archives").path
    monkeypatch.setenv(ENV_VAR, str(ts_ref_venv))
    answers = {}
    for engine in ("", "--torchserve"):
        folder = short_dir / (engine.strip("-") or "embedded")
        folder.mkdir()
        with notebook_shell(folder, monkeypatch) as shell:
            answers[engine] = flow(shell, archive, engine)
            stopped = shell.run_line_magic("ts_serve", "stop")
            assert stopped.startswith("stopped backend pid")
    assert answers["--torchserve"] == answers[""]
    assert answers[""]["predictions"][0] == [-0.36975, -0.10713, 0.09059]
    assert answers[""]["workers after scale"] == ["READY", "READY"]


def test_notebook_extras_say_they_need_the_embedded_backend(
    ts_ref_venv: Path, model_assets: Path, short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = build_tiny(model_assets, short_dir / "archives").path
    monkeypatch.setenv(ENV_VAR, str(ts_ref_venv / "bin" / "torchserve"))
    with notebook_shell(short_dir, monkeypatch, f"--torchserve --no-token --models tiny={archive}") as shell:
        for line in ("requests", "timings", "replay some-id", "reload tiny"):
            with pytest.raises(UsageError, match="needs the embedded backend: real TorchServe keeps no record"):
                shell.run_line_magic("ts_serve", line)
        shell.run_line_magic("ts_serve", f"predict tiny '{PAYLOADS[0]}'")
        logs = shell.run_line_magic("ts_serve", "logs tiny --tail 200").to_text()
        assert "Torch worker started." in logs  # TorchServe's own model_log.log, by model
        info = shell.run_line_magic("ts_serve", "client")
        assert info.inference_key is None  # --no-token: TorchServe runs with token authorization off
        dashboard = shell.run_line_magic("ts_serve", "dashboard --interval 60")
        try:
            dashboard.refresh()
            assert dashboard.status != "stopped", getattr(dashboard, "last_error", "")
            assert [m["modelName"] for m in dashboard.models.models] == ["tiny"]
            assert "keeps no record of served requests" in dashboard.requests.note
            assert dashboard.send("tiny", PAYLOADS[0], "application/json").status == 200
        finally:
            dashboard.poller.stop()


def test_the_kernel_exiting_stops_its_torchserve(ts_ref_venv: Path, short_dir: Path) -> None:
    """TorchServe's JVM daemonizes; the watchdog stops it when the kernel that started it is gone."""
    script = f"""
import os
from pathlib import Path
os.environ["XDG_RUNTIME_DIR"] = {str(short_dir)!r}
os.environ[{ENV_VAR!r}] = {str(ts_ref_venv)!r}
from ts_notebook import launcher, session
outcome = session.start_backend(launcher.LaunchSpec(Path({str(short_dir / "store")!r}), engine="torchserve"))
print(outcome.info.pid if isinstance(outcome, launcher.Started) else outcome, flush=True)
os._exit(0)
"""
    import subprocess
    import sys

    (short_dir / "store").mkdir()
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert out.stdout.strip().isdigit(), out.stdout + out.stderr
    pid = int(out.stdout)
    deadline = time.monotonic() + 40
    while launcher.is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not launcher.is_alive(pid), "TorchServe outlived the kernel that started it"


def test_missing_torchserve_or_java_fails_saying_what_to_install(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(short_dir))
    spec = launcher.LaunchSpec(short_dir, engine="torchserve")
    monkeypatch.setenv(ENV_VAR, str(short_dir / "no-such-venv"))
    outcome = start_backend(spec)
    assert isinstance(outcome, launcher.Failed)
    assert "is not a torchserve executable nor a venv that has bin/torchserve" in outcome.reason
    assert "pip install torch==2.13.0 torchserve==0.12.0" in outcome.reason
    fake = short_dir / "bin" / "torchserve"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv(ENV_VAR, str(fake))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(fake.parent))
    outcome = start_backend(spec)
    assert isinstance(outcome, launcher.Failed)
    assert "install Java 17" in outcome.reason
    assert not list(short_dir.glob("ts_notebook/*/backend.json"))  # nothing recorded as running
