"""A backend nobody can freeze, fool or enter: real backend subprocesses, loopback only, bounded."""

from __future__ import annotations

import contextlib
import http.client
import os
import pickle
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.backend.conftest import Models
from tests.backend.helpers import Backend, alive, build, start_backend, wait_until
from ts_notebook.archive import build_archive
from ts_notebook.records import LogLine


class _Marker:
    """Unpickling this creates a file: proof that a stranger's pickle was executed."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (os.system, (f"touch {self.path}",))


def test_a_stranger_on_the_worker_socket_executes_nothing(backend: Backend, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Marker(str(marker)))
    for name in ("workers.sock", "zygote.sock"):
        path = backend.run_dir / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            try:
                sock.connect(str(path))
            except ConnectionRefusedError:
                assert name == "zygote.sock"  # it takes its one connection at start, then listens no more
                continue
            sock.sendall(b"\0" * 32 + struct.pack(">I", len(payload)) + payload)
            assert sock.recv(1) == b""  # closed on us, unread
    assert stat.S_IMODE(backend.run_dir.stat().st_mode) == 0o700
    events = backend.events(kind="log").of(LogLine)
    assert sum("refused a connection to workers.sock" in e.message for e in events) >= 1
    assert not marker.exists()
    assert backend.predict("startup", b'{"x": 1}').status == 200  # the real workers still serve


def test_devices_and_fifos_are_refused_before_anything_is_read(backend: Backend, tmp_path: Path) -> None:
    fifo = tmp_path / "model.mar"
    os.mkfifo(fifo)
    for url in ("/dev/zero", str(fifo)):
        started = time.monotonic()
        reply = backend.register(url, model_name="bad")
        assert reply.status == 400, reply.body
        assert reply.json()["message"] == f"{url} is not a regular file or folder: give a .mar, .tar.gz or model folder"
        assert time.monotonic() - started < 5
    assert backend.predict("startup", b"{}").status == 200


def test_an_invalid_manifest_gets_torchserve_json(backend: Backend, models: Models, tmp_path: Path) -> None:
    folder = tmp_path / "badmanifest"
    (folder / "MAR-INF").mkdir(parents=True)
    (folder / "MAR-INF" / "MANIFEST.json").write_text("{not json")
    (folder / "handler.py").write_text("def handle(data, context):\n    return data\n")
    reply = models.register(str(folder), "badmanifest", expect=400)
    body = reply.json()
    assert body["code"] == 400 and body["type"] == "ModelException"
    assert "MAR-INF/MANIFEST.json is not valid JSON" in body["message"]


def test_a_large_registration_does_not_hold_up_other_models(backend: Backend, models: Models, tmp_path: Path) -> None:
    weights = tmp_path / "big.bin"
    weights.write_bytes(os.urandom(96 << 20))  # incompressible: stored, read and hashed in full
    handler = tmp_path / "h.py"
    handler.write_text("def handle(data, context):\n    return [1 for _ in data] if data else None\n")
    build_archive("big", "1.0", str(handler), extra_files=str(weights), export_path=tmp_path)
    latencies: list[float] = []
    done = threading.Event()

    def probe() -> None:
        while not done.is_set():
            latencies.append(backend.predict("startup", b"{}").elapsed)

    thread = threading.Thread(target=probe)
    thread.start()
    try:
        wait_until(lambda: len(latencies) > 5, 10, "predictions before the registration")
        before = len(latencies)
        models.register(str(tmp_path / "big.mar"), "big", initial_workers=0)
        during = latencies[before:]
    finally:
        done.set()
        thread.join()
    assert len(during) >= 3, "predictions kept being answered while the archive registered"
    assert max(during) < 1.0, sorted(during)[-5:]  # TorchServe-sized delays, not the whole read


def test_slow_clients_are_cut_off(tmp_path: Path, store: Path) -> None:
    b = start_backend(
        tmp_path, store, {"ts_notebook_header_timeout": "1", "ts_notebook_body_timeout": "1"}, ["--disable-token-auth"]
    )
    try:
        host, port = b.inference.removeprefix("http://").split(":")
        slow = [socket.create_connection((host, int(port)), timeout=10) for _ in range(4)]
        for sock in slow:
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n")  # never ends its head
        for sock in slow:
            assert sock.recv(100) == b""  # closed by the server, after about a second
            sock.close()
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"POST /predictions/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part")
            answer = sock.recv(4096)
        assert b" 408 " in answer.split(b"\r\n", 1)[0] and b"RequestTimeoutException" in answer
        assert b.call_ok()
    finally:
        b.stop()


def test_the_key_file_is_private_even_if_it_was_not(tmp_path: Path, store: Path) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o755)
    (run / "key_file.json").write_text("{}")
    (run / "key_file.json").chmod(0o644)
    b = start_backend(tmp_path, store, {}, [])
    try:
        assert stat.S_IMODE((run / "key_file.json").stat().st_mode) == 0o600
        assert stat.S_IMODE(run.stat().st_mode) == 0o700
    finally:
        b.stop()


def test_without_run_dir_nothing_lands_in_the_working_dir(tmp_path: Path, store: Path) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (tmp_path / "xdg").mkdir()
    cfg = tmp_path / "config.properties"
    cfg.write_text("".join(f"{k}_address=http://127.0.0.1:0\n" for k in ("inference", "management", "metrics")))
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path / "xdg")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ts_notebook.backend", "--model-store", str(store), "--ts-config", str(cfg)],
        cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        run_dir = tmp_path / "xdg" / "ts_notebook" / f"cli-{proc.pid}"
        wait_until(lambda: (run_dir / "backend.json").is_file(), 60, "the backend to serve")
        assert (run_dir / "key_file.json").is_file()
        assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
        assert list(cwd.iterdir()) == []
    finally:
        proc.terminate()
        proc.wait(20)


def test_sigterm_stops_a_busy_backend_within_two_seconds(tmp_path: Path, store: Path) -> None:
    build(store, "hang", yaml_text="minWorkers: 1\nmaxWorkers: 1\nresponseTimeout: 60\n")
    b = start_backend(tmp_path, store, {}, ["--disable-token-auth", "--models", "hang=hang.mar"])

    def wait_forever() -> None:
        with contextlib.suppress(OSError, http.client.HTTPException):  # the server goes away under it
            b.predict("hang", b"{}", mode="sleep", headers={"X-Sleep": "30"}, timeout=60)

    stuck = threading.Thread(target=wait_forever)
    stuck.start()
    wait_until(lambda: b.workers("hang") and b.workers("hang")[0].holding == 1, 10, "a request in the worker")
    pids = b.worker_pids()
    started = time.monotonic()
    b.process.send_signal(signal.SIGTERM)
    b.process.wait(10)
    assert time.monotonic() - started < 3.0
    wait_until(lambda: not any(alive(p) for p in pids), 5, "the workers to go")
    stuck.join(60)
    assert not (b.run_dir / "backend.json").exists()


@pytest.mark.parametrize("attached", [True, False])
def test_kernel_death_stops_only_attached_backends(tmp_path: Path, store: Path, attached: bool) -> None:
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    args = ["--disable-token-auth"] + (["--parent-pid", str(parent.pid)] if attached else [])
    b = start_backend(tmp_path, store, {}, args)
    try:
        parent.kill()
        parent.wait()
        if attached:
            b.process.wait(10)  # noticed by a thread of its own, whatever the event loop is doing
            assert b.process.returncode == 0
        else:
            assert b.process.poll() is None and b.call_ok()
    finally:
        if b.process.poll() is None:
            b.stop()
