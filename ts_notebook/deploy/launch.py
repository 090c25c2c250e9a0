"""Real TorchServe behind ``%ts_serve start --torchserve``: the same model store, the same launcher
outcomes (Started / Failed / TimedOut) and the same backend record, so every ``%ts_serve`` subcommand
finds, reuses and stops it as it does the embedded backend.

TorchServe is found from ``TS_NOTEBOOK_TORCHSERVE`` (its ``torchserve`` executable or the venv that
has it), else on PATH; it runs in a venv of its own so that ``ts`` is never importable in the kernel.
Its JVM daemonizes, so unless detached a small watchdog stops it when the kernel exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from ts_notebook.backend.info import BackendInfo
from ts_notebook.deploy.torchserve import (
    TorchServe,
    TorchServeTimeout,
    _descendants,
    _poll,
    _start_token,
    place,
    wait_or_kill,
)
from ts_notebook.launcher import Failed, LaunchSpec, Started, TimedOut
from ts_notebook.properties import read_properties

ENV_VAR = "TS_NOTEBOOK_TORCHSERVE"
_WATCHDOGS: list[subprocess.Popen[bytes]] = []
INSTALL_HINT = (
    "install it in a venv of its own (torch pinned): python -m venv ~/.venv-ts && ~/.venv-ts/bin/pip install "
    "torch==2.13.0 torchserve==0.12.0 torch-model-archiver==0.12.0 pyyaml, then set "
    f"{ENV_VAR}=~/.venv-ts/bin/torchserve (or add that bin folder to PATH)"
)
JAVA_HINT = "TorchServe's front end is Java: install Java 17 (apt-get install openjdk-17-jre-headless) or set JAVA_HOME"


def find_torchserve() -> Path | str:
    """The ``torchserve`` executable to run, or why there is none (a message saying what to install)."""
    given = os.environ.get(ENV_VAR)
    if given:
        path = Path(given).expanduser()
        exe = path / "bin" / "torchserve" if path.is_dir() else path
        if exe.is_file() and os.access(exe, os.X_OK):
            return exe
        return f"{ENV_VAR}={given} is not a torchserve executable nor a venv that has bin/torchserve; {INSTALL_HINT}"
    found = shutil.which("torchserve")
    return Path(found) if found else f"real TorchServe is not installed (no torchserve on PATH); {INSTALL_HINT}"


def find_java() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def _version(venv: Path) -> str:
    """The TorchServe version installed in ``venv`` (its ts/version.txt), for the record and status."""
    found = next(venv.glob("lib/python*/site-packages/ts/version.txt"), None)
    return f"torchserve {found.read_text().strip()}" if found else "torchserve"


def stage(store: Path, path: str) -> str:
    """``path`` as TorchServe's model store knows it: a name there (hard-linked or copied in when outside).

    TorchServe registers only archives in its model store (or URLs it is allowed to fetch).
    """
    src = Path(path)
    if not src.is_absolute() or not src.exists():
        return path  # a name in the store, or a URL: TorchServe resolves it
    if src.parent.resolve() == store.resolve():
        return src.name
    place(src, store / src.name)
    return src.name


def properties(spec: LaunchSpec, ports: dict[str, int], store: Path, models: list[str]) -> dict[str, str]:
    """config.properties for a notebook's TorchServe: the user's file, on loopback ports we picked where
    it names none (or port 0), the model API on (the notebook registers), tokens as asked, and
    /metrics in prometheus mode as the embedded backend has it."""
    props = read_properties(spec.ts_config) if spec.ts_config is not None else {}
    for name in ("inference", "management", "metrics"):
        if not props.get(f"{name}_address") or props[f"{name}_address"].rstrip("/").endswith(":0"):
            props[f"{name}_address"] = f"http://127.0.0.1:{ports[name]}"
    for name in ("grpc_inference", "grpc_management"):  # gRPC is on by default at 7070/7071: move it
        props.setdefault(f"{name}_address", "127.0.0.1")
        props.setdefault(f"{name}_port", str(ports[name]))
    props["model_store"] = str(store)
    props.setdefault("enable_model_api", "true")
    props["disable_token_authorization"] = "false" if spec.token_auth else "true"
    # TorchServe's keys last 60 minutes; a notebook session is longer, and the kernel reads them from key_file.json.
    props.setdefault("token_expiration_min", "1440")
    props.setdefault("metrics_mode", "prometheus")
    # TorchServe's own default is one worker per core (per GPU when it has GPUs), like the embedded backend's.
    props["default_workers_per_model"] = str(spec.workers if spec.workers is not None else os.cpu_count() or 1)
    if spec.gpus is not None:
        props["number_of_gpu"] = "0" if spec.gpus == "none" else str(len(spec.gpus.split(",")))
    if models:
        props["load_models"] = ",".join(models)
    return props


def _staged_models(store: Path, given: list[str]) -> list[str]:
    """``--models`` entries (``NAME=PATH`` or ``PATH``) with local paths put into the store."""
    out = []
    for entry in given:
        name, sep, path = entry.rpartition("=")
        out.append(f"{name}{sep}{stage(store, path)}")
    return out


def start(spec: LaunchSpec, run_dir: Path, timeout: float) -> Started | Failed | TimedOut:
    """Start real TorchServe for ``spec``; a launcher outcome (its failures are returned, not raised)."""
    exe = find_torchserve()
    if isinstance(exe, str):
        return Failed(exe, "")
    if find_java() is None:
        return Failed(JAVA_HINT, "")
    store = spec.model_store or run_dir / "model_store"
    store.mkdir(parents=True, exist_ok=True)
    models = _staged_models(store, spec.models)
    (run_dir / "ts").mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        server = TorchServe(exe.parent.parent, root=run_dir / "ts", startup_timeout=timeout, model_store=store)
    except ValueError as exc:  # the run folder is too deep for TorchServe's unix sockets
        return Failed(f"{exc} (set XDG_RUNTIME_DIR to a short folder)", "")
    server.configure(properties(spec, server.ports, store, models))
    if spec.gpus and spec.gpus != "none":
        server.extra_env["CUDA_VISIBLE_DEVICES"] = spec.gpus
    began = time.monotonic()
    try:
        server.start()
    except TorchServeTimeout as exc:
        return TimedOut(timeout, str(exc))
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        return Failed(f"TorchServe did not start: {str(exc).splitlines()[0]}", str(exc))
    assert server.pid is not None
    info = BackendInfo(
        pid=server.pid,
        run_dir=run_dir,
        inference_address=server.inference_url,
        management_address=server.management_url,
        metrics_address=server.metrics_url,
        key_file=server.key_file if spec.token_auth else None,
        model_store=str(store),
        started=time.time(),
        version=_version(exe.parent.parent),
        failed_models=_not_loaded(server, spec.models, models, timeout),
        engine="torchserve",
        log_dir=str(server.log_dir),
    )
    info.write()
    if not spec.detach:
        _watch(server.pid, run_dir)
    return Started(info, time.monotonic() - began)


def _described(server: TorchServe, name: str) -> list[dict[str, object]]:
    keys = server.keys()
    headers = {"Authorization": f"Bearer {keys['management']}"} if keys else {}
    status, body = server.request("GET", f"{server.management_url}/models/{name}", headers=headers)
    found = json.loads(body) if status == 200 else []
    return found if isinstance(found, list) else []


def _not_loaded(server: TorchServe, given: list[str], staged: list[str], timeout: float) -> dict[str, str]:
    """Start-up models that are not serving once TorchServe answers (it loads them after /ping says
    Healthy): wait until each has a READY worker, and name those that never get one, with the last
    error line of its log."""
    if not given:
        return {}
    names = [entry.rpartition("=")[0] or Path(entry).name.split(".")[0] for entry in staged]

    def ready(name: str) -> bool:
        return any(w.get("status") == "READY" for v in _described(server, name) for w in v.get("workers", []))  # type: ignore[attr-defined]

    registered = [n for n in names if _described(server, n)]  # load_models registers before the ports open
    _poll(lambda: all(ready(n) for n in registered), timeout)
    errors = [line for line in server.logs(200, ("ts_log.log",)).splitlines() if "ERROR" in line or "Exception" in line]
    why = errors[-1].strip() if errors else "see ts_log.log"
    return {spec: why for spec, name in zip(given, names, strict=True) if not ready(name)}


def _identity(pid: int) -> tuple[str, str]:
    return str(pid), str(_start_token(pid))


def _watch(jvm_pid: int, run_dir: Path) -> None:
    """A watchdog that stops the JVM when this process (the kernel) exits."""
    # Kept, so it is reaped when it exits rather than left a zombie (or warned about) by the kernel.
    _WATCHDOGS[:] = [w for w in _WATCHDOGS if w.poll() is None]
    _WATCHDOGS.append(
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ts_notebook.deploy.watchdog",
                *_identity(os.getpid()),
                *_identity(jvm_pid),
                str(run_dir),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            cwd=run_dir,
        )
    )


def stop_processes(pid: int, grace: float = 20.0) -> bool:
    """Stop a JVM and its workers (only those: each checked by start time); True when all are gone."""
    tracked = [(p, tok) for p in [pid, *_descendants(pid)] if (tok := _start_token(p)) is not None]
    for p, _ in tracked:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGTERM)
    return wait_or_kill(tracked, grace)


def stop(info: BackendInfo, grace: float = 20.0) -> bool:
    """Stop a notebook's TorchServe and remove its record; True when it is gone."""
    if not stop_processes(info.pid, grace):
        return False
    info.remove()
    (info.run_dir / "ts" / "tmp" / ".model_server.pid").unlink(missing_ok=True)
    return True
