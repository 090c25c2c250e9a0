"""Launcher outcomes with stub backends that crash, exit early or hang; reuse and parent death with
the real backend."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backend.helpers import wait_until
from ts_notebook import launcher
from ts_notebook.launcher import BackendInfo, Failed, LaunchSpec, Reused, Started, TimedOut


@pytest.fixture(autouse=True)
def private_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test keeps its backend records in its own folder."""
    runtime = tmp_path / "xdg"
    runtime.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    return runtime


def stub(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_records_folder_is_private(private_records: Path) -> None:
    folder = launcher.records_dir()
    assert folder == private_records / "ts_notebook"
    assert folder.stat().st_mode & 0o777 == 0o700


def test_a_backend_that_crashes_is_reported_with_its_output(tmp_path: Path) -> None:
    outcome = launcher.start(
        LaunchSpec(tmp_path),
        argv=stub("import sys; print('loading...'); sys.exit('ImportError: no module named aiohttp')"),
    )
    assert isinstance(outcome, Failed)
    assert outcome.exit_code == 1
    assert outcome.reason == "the backend exited with code 1: ImportError: no module named aiohttp"
    assert "loading..." in outcome.output


def test_the_launcher_knows_only_the_embedded_engine(tmp_path: Path) -> None:
    """Real TorchServe is the session's choice (session.start_backend); the launcher refuses it rather
    than start the embedded backend under TorchServe's key."""
    with pytest.raises(ValueError, match="start 'torchserve' through session.py"):
        launcher.start(LaunchSpec(tmp_path, engine="torchserve"))
    assert not list(launcher.records_dir().glob("*/backend.json"))


def test_a_backend_that_exits_without_serving(tmp_path: Path) -> None:
    outcome = launcher.start(LaunchSpec(tmp_path), argv=stub("pass"))
    assert isinstance(outcome, Failed) and outcome.exit_code == 0
    assert outcome.reason == "the backend exited with code 0: no output"


def test_a_backend_that_hangs_times_out_and_is_stopped(tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    code = f"import os, time; open({str(marker)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    outcome = launcher.start(LaunchSpec(tmp_path), argv=stub(code), timeout=1.5)
    assert isinstance(outcome, TimedOut) and outcome.seconds == 1.5
    pid = int(marker.read_text())
    assert not launcher.is_alive(pid)


def test_busy_port_names_the_process_that_holds_it(tmp_path: Path) -> None:
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        cfg = tmp_path / "config.properties"
        cfg.write_text(f"inference_address=http://127.0.0.1:{port}\n")
        outcome = launcher.start(LaunchSpec(tmp_path, ts_config=cfg, token_auth=False), timeout=60)
    assert isinstance(outcome, Failed)
    assert outcome.reason == (
        f"port {port} is taken by pid {os.getpid()}; pass --ts-config with other ports "
        "(or port 0), or stop that process"
    )


@pytest.fixture
def real(tmp_path: Path) -> Iterator[LaunchSpec]:
    spec = LaunchSpec(tmp_path / "store")
    spec.model_store.mkdir()  # type: ignore[union-attr]
    yield spec
    info = launcher.find(spec)
    if info is not None:
        launcher.stop(info)


def test_start_then_reuse_then_stop(real: LaunchSpec) -> None:
    first = launcher.start(real)
    assert isinstance(first, Started), first
    assert first.info.client().ping()
    second = launcher.start(real)
    assert isinstance(second, Reused) and second.info.pid == first.info.pid
    assert launcher.stop(first.info)
    assert not launcher.is_alive(first.info.pid)
    assert launcher.find(real) is None


def test_reuse_skips_a_dead_instance(real: LaunchSpec) -> None:
    first = launcher.start(real)
    assert isinstance(first, Started)
    os.kill(first.info.pid, signal.SIGKILL)  # its record stays behind, stale
    deadline = time.monotonic() + 10
    while launcher.is_alive(first.info.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    again = launcher.start(real)
    assert isinstance(again, Started) and again.info.pid != first.info.pid


def test_backend_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    """A kernel stand-in starts a backend through the launcher, then dies; the backend follows."""
    store = tmp_path / "store"
    store.mkdir()
    code = (
        "import sys; from pathlib import Path; from ts_notebook import launcher; "
        f"o = launcher.start(launcher.LaunchSpec(Path({str(store)!r}))); print(o.info.pid, flush=True); "
        "sys.stdin.read()"
    )
    with subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE) as kernel:
        assert kernel.stdout is not None
        backend_pid = int(kernel.stdout.readline())
        assert launcher.is_alive(backend_pid)
        kernel.kill()
    deadline = time.monotonic() + 15
    while launcher.is_alive(backend_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not launcher.is_alive(backend_pid)


def test_detached_backend_survives_its_parent(tmp_path: Path) -> None:
    """The parent starts an attached and a detached backend, then exits. Once the attached one has
    noticed and exited (its parent check ran after the parent was gone), the detached one still serves."""
    attached, detached = LaunchSpec(tmp_path / "attached"), LaunchSpec(tmp_path / "detached", detach=True)
    for spec in (attached, detached):
        spec.model_store.mkdir()  # type: ignore[union-attr]
    code = (
        "from pathlib import Path; from ts_notebook import launcher; "
        f"a = launcher.start(launcher.LaunchSpec(Path({str(attached.model_store)!r}))); "
        f"d = launcher.start(launcher.LaunchSpec(Path({str(detached.model_store)!r}), detach=True)); "
        "print(a.info.pid, d.info.pid)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    attached_pid, pid = map(int, out.stdout.split())
    try:
        wait_until(lambda: not launcher.is_alive(attached_pid), 15, "the attached backend to follow its parent")
        assert launcher.is_alive(pid)
        info = launcher.find(detached)
        assert info is not None and info.pid == pid
        assert info.client().ping()
    finally:
        for spec in (attached, detached):
            found = BackendInfo.read(launcher.records_dir() / spec.key())
            if found is not None:
                launcher.stop(found)
