"""Run a real TorchServe (0.12.0 here) from a venv that has it, isolated in its own root folder.

`torchserve --stop` stops whatever pid file it finds in the temp dir, and the JVM puts logs, sockets and
extracted models under cwd/TMPDIR: so each instance owns a root dir, free ports and a config.properties.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

from ts_notebook.jsontypes import JsonObject
from ts_notebook.properties import read_properties

try:
    import psutil
except ImportError:  # the /proc fallback below covers Linux
    psutil = None

_PORT_NAMES = ("inference", "management", "metrics", "grpc_inference", "grpc_management")
LOG_FILES = ("console.log", "ts_log.log", "model_log.log")
_TAIL_FILES = ("model_log.log", "ts_log.log")
# Workers talk to the JVM over unix sockets `$TMPDIR/.ts.sock.<port>`; sun_path holds 107 bytes.
_MAX_TMP_LEN = 107 - len("/.ts.sock.65535")
# Never route 127.0.0.1 through an http_proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _free_ports(count: int) -> list[int]:
    """Pick `count` distinct free TCP ports on 127.0.0.1 (held together so they differ)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def _start_token(pid: int) -> str | None:
    """Identify a live process by pid + start time (so a reused pid is never killed); None if gone."""
    # A zombie counts as gone: nobody here can reap it (its parent is init, or a dead JVM).
    if psutil is not None:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            return None if proc.status() == psutil.STATUS_ZOMBIE else str(proc.create_time())
        return None
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return None if fields[0] == "Z" else fields[19]  # fields 3 (state) and 22 (starttime) of stat
    return None


def _descendants(pid: int) -> list[int]:
    """Pids of all descendants of `pid` at this moment."""
    if psutil is not None:
        with contextlib.suppress(psutil.Error):
            return [p.pid for p in psutil.Process(pid).children(recursive=True)]
        return []
    parent_of: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            parent_of[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    found, i = [pid], 0
    while i < len(found):
        found += [child for child, parent in parent_of.items() if parent == found[i]]
        i += 1
    return found[1:]


def wait_or_kill(tracked: list[tuple[int, str]], timeout: float) -> bool:
    """Wait for the (pid, start token) processes to go; SIGKILL those still there after ``timeout``.
    The token makes sure a reused pid is never killed. True when all are gone."""

    def gone() -> bool:
        return all(_start_token(pid) != tok for pid, tok in tracked)

    if _poll(gone, timeout):
        return True
    for pid, tok in tracked:
        if _start_token(pid) == tok:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return _poll(gone, 5.0)


def _poll(done: Callable[[], bool], timeout: float) -> bool:
    """Poll `done` every 0.1 s until it is true or `timeout` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


class TorchServeTimeout(RuntimeError):
    """TorchServe's JVM ran but did not answer /ping in time (it was stopped)."""


class TorchServe:
    """One TorchServe with its own root dir (cwd, TMPDIR, logs/, store/), ports and config.

    Args:
        venv: Reference venv holding `bin/torchserve` (torchserve 0.12.0, torch, pyyaml).
        root: Dir to own; a fresh temp dir, removed by `stop()`, if None.
        config: Extra config.properties entries, overriding the defaults.
        startup_timeout: Seconds `start()` waits for `/ping`.

    Raises:
        ValueError: `root` is too long for the workers' unix socket paths.
    """

    def __init__(
        self,
        venv: Path,
        root: Path | None = None,
        config: Mapping[str, str] | None = None,
        startup_timeout: float = 60.0,
        *,
        model_store: Path | None = None,
        config_file: Path | None = None,
    ) -> None:
        self.venv = Path(venv)
        self._owns_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="ts-compat-")) if root is None else Path(root)
        self.store = Path(model_store) if model_store is not None else self.root / "store"
        self.tmp, self.log_dir = self.root / "tmp", self.root / "logs"
        if len(str(self.tmp.resolve())) > _MAX_TMP_LEN:
            raise ValueError(f"TorchServe root {self.root} is too long for unix sockets; use a shorter dir")
        self.ports = dict(zip(_PORT_NAMES, _free_ports(len(_PORT_NAMES)), strict=True))
        self.inference_url = f"http://127.0.0.1:{self.ports['inference']}"
        self.management_url = f"http://127.0.0.1:{self.ports['management']}"
        self.metrics_url = f"http://127.0.0.1:{self.ports['metrics']}"
        self.config_path = self.root / "config.properties"
        self._given_config = config_file is not None  # start with that file exactly as it is
        if config_file is not None:
            self.config_path = Path(config_file)
            self._urls_from(read_properties(self.config_path))
        self.key_file = self.root / "key_file.json"  # TorchServe writes its tokens into its working dir
        self.extra_env: dict[str, str] = {}  # e.g. CUDA_VISIBLE_DEVICES
        self.pid: int | None = None  # the JVM, once started
        self._jvm_token: str | None = None
        self._config = dict(config or {})
        self._startup_timeout = startup_timeout

    def __enter__(self) -> TorchServe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _env(self) -> dict[str, str]:
        # The reference must not see our test venv's paths, nor a TS_CONFIG_FILE overriding --ts-config.
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "TS_CONFIG_FILE")}
        env["TMPDIR"] = env["TEMP"] = env["TMP"] = str(self.tmp)  # pid file, sockets, extracted models
        env["LOG_LOCATION"] = env["METRICS_LOCATION"] = str(self.log_dir)
        # Workers run the venv's `python`; JAVA_HOME stays as it is.
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.venv)
        return env | self.extra_env

    def _cli(self, *args: str) -> int:
        """Run the torchserve CLI; output goes to a file because the JVM inherits it (a pipe never closes)."""
        with open(self.root / "console.log", "ab") as out:
            return subprocess.run(
                [str(self.venv / "bin" / "torchserve"), *args],
                cwd=self.root,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=60,
                check=False,
            ).returncode

    def start(self) -> TorchServe:
        """Write the config, start TorchServe and wait for `/ping` to answer 200.

        Raises:
            RuntimeError: the CLI failed, the JVM exited or `/ping` never answered; logs attached.
        """
        for folder in (self.store, self.tmp, self.log_dir):
            folder.mkdir(parents=True, exist_ok=True)
        if not self._given_config:
            self._write_config()
        rc = self._cli("--start", "--ncs", "--model-store", str(self.store), "--ts-config", str(self.config_path))
        pid_file = self.tmp / ".model_server.pid"
        if rc == 0 and pid_file.is_file():
            self.pid = int(pid_file.read_text().strip())
            self._jvm_token = _start_token(self.pid)
            if _poll(self._healthy_or_dead, self._startup_timeout) and self._jvm_alive():
                return self
        logs = self.logs(tail=60)
        timed_out = self._jvm_alive()
        self.stop()
        if timed_out:
            raise TorchServeTimeout(
                f"TorchServe did not answer /ping on {self.inference_url} within {self._startup_timeout:.0f} s\n{logs}"
            )
        raise RuntimeError(f"TorchServe (CLI exit {rc}) did not answer /ping on {self.inference_url}\n{logs}")

    def _write_config(self) -> None:
        # gRPC is on by default (7070/7071): move it too, or two instances collide.
        props = {f"{name}_address": f"http://127.0.0.1:{self.ports[name]}" for name in _PORT_NAMES[:3]}
        for name in _PORT_NAMES[3:]:
            props |= {f"{name}_address": "127.0.0.1", f"{name}_port": str(self.ports[name])}
        props |= {
            "disable_token_authorization": "true",
            "enable_model_api": "true",
            "default_workers_per_model": "1",
            "model_store": str(self.store),
            **self._config,
        }
        self.config_path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))

    def configure(self, props: Mapping[str, str]) -> None:
        """Replace the config.properties entries written at start (addresses in them are followed)."""
        self._config = dict(props)
        self._urls_from(props)

    def _urls_from(self, props: Mapping[str, str]) -> None:
        """Where config.properties entries make TorchServe listen (reached on 127.0.0.1 when it binds all)."""
        for name in _PORT_NAMES[:3]:
            address = props.get(f"{name}_address")
            if address:
                parts = urllib.parse.urlsplit(address)
                host = "127.0.0.1" if parts.hostname in (None, "0.0.0.0") else parts.hostname
                setattr(self, f"{name}_url", f"{parts.scheme}://{host}:{parts.port}")

    def keys(self) -> dict[str, str]:
        """The inference and management tokens TorchServe wrote, {} while token authorization is off."""
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            data = json.loads(self.key_file.read_text())
            return {"inference": data["inference"]["key"], "management": data["management"]["key"]}
        return {}

    def _jvm_alive(self) -> bool:
        return self.pid is not None and self._jvm_token is not None and _start_token(self.pid) == self._jvm_token

    def _healthy_or_dead(self) -> bool:
        """True once `/ping` answers 200, or once the JVM is gone (no point waiting on)."""
        with contextlib.suppress(OSError, http.client.HTTPException):  # not listening yet
            if not self._jvm_alive():
                return True
            key = self.keys().get("inference")
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            return self.request("GET", f"{self.inference_url}/ping", timeout=2, headers=headers)[0] == 200
        return False

    def stop(self, timeout: float = 20.0) -> None:
        """Stop TorchServe, wait for the JVM and its children to go, SIGKILL those left; idempotent."""
        if self.pid is not None:
            # Only the JVM we started (checked by start time: the pid may be reused) and its children.
            pids = [self.pid, *_descendants(self.pid)] if self._jvm_alive() else []
            tracked = [(pid, tok) for pid in pids if (tok := _start_token(pid)) is not None]
            self._cli("--stop")  # returns at once while the JVM is still shutting down (~3 s)

            wait_or_kill(tracked, timeout)
            self.pid = None
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def request(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        content_type: str | None = None,
        timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """Send one HTTP request; return (status, body) for any status, raising only on transport errors."""
        req = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
        if content_type is not None:
            req.add_header("Content-Type", content_type)
        try:
            with _OPENER.open(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            with err:
                return err.code, err.read()

    def register(
        self, archive: str | os.PathLike[str], model_name: str | None = None, timeout: float = 120.0
    ) -> JsonObject:
        """Register an archive (path, or name in the store) with one worker, synchronously.

        Returns:
            The management API's JSON answer, `{"status": "Model \\"x\\" Version: 1.0 registered ..."}`.

        Raises:
            AssertionError: not HTTP 200 or no answer in `timeout`, with the model_log and ts_log tails.
                A model whose workers failed to start is unregistered, so its name can be reused.
        """
        url = self._stage(archive)
        query = {"url": url, "initial_workers": "1", "synchronous": "true"}
        if model_name is not None:
            query["model_name"] = model_name
        try:
            status, body = self.request(
                "POST", f"{self.management_url}/models?{urllib.parse.urlencode(query)}", timeout=timeout
            )
        except (OSError, http.client.HTTPException) as exc:
            raise AssertionError(f"registering {url!r} failed: {exc!r}\n{self.logs(60, _TAIL_FILES)}") from exc
        if status != 200:
            tails = self.logs(60, _TAIL_FILES)
            failed = re.search(r"for model (\S+) version", body.decode(errors="replace"))
            if status == 500 and failed:
                # A failed synchronous registration leaves the model registered with 0 workers.
                self.request("DELETE", f"{self.management_url}/models/{urllib.parse.quote(failed[1])}")
            raise AssertionError(
                f"registering {url!r} returned HTTP {status}: {body.decode(errors='replace')}\n{tails}"
            )
        result: JsonObject = json.loads(body)
        return result

    def _stage(self, archive: str | os.PathLike[str]) -> str:
        """Put `archive` into the store (hard links, else copies) and return its name there."""
        if isinstance(archive, str) and os.sep not in archive and (self.store / archive).exists():
            return archive
        src = Path(archive)
        if not src.exists():
            raise FileNotFoundError(f"no archive at {src} and no {src.name!r} in the store {self.store}")
        dest = self.store / src.name
        if dest.exists() and src.resolve() == dest.resolve():
            return src.name
        place(src, dest)  # a stale copy at dest goes: registered models were extracted to TEMP already
        return src.name

    def unregister(self, name: str, version: str | None = None) -> JsonObject:
        """Unregister a model (its default version unless `version` is given); AssertionError if not 200."""
        path = urllib.parse.quote(name) + ("" if version is None else f"/{urllib.parse.quote(version)}")
        status, body = self.request("DELETE", f"{self.management_url}/models/{path}")
        assert status == 200, f"unregistering {name!r} returned HTTP {status}: {body.decode(errors='replace')}"
        result: JsonObject = json.loads(body)
        return result

    def predict(
        self, name: str, body: bytes, content_type: str = "application/json", timeout: float = 60.0
    ) -> tuple[int, bytes]:
        """POST `body` to `/predictions/<name>`; return (status, response body)."""
        return self.request(
            "POST", f"{self.inference_url}/predictions/{urllib.parse.quote(name)}", body, content_type, timeout
        )

    def serve_once(
        self, archive: str | os.PathLike[str], model_name: str, body: bytes, content_type: str = "application/json"
    ) -> tuple[int, bytes]:
        """Register `archive` as `model_name`, send one prediction, unregister; the prediction's answer."""
        self.register(archive, model_name=model_name)
        try:
            return self.predict(model_name, body, content_type)
        finally:
            self.unregister(model_name)

    def logs(self, tail: int | None = None, files: tuple[str, ...] = LOG_FILES) -> str:
        """Console output, ts_log and model_log (last `tail` lines of each), each under a header."""
        parts = []
        for name in files:
            path = self.root / name if name == "console.log" else self.log_dir / name
            lines = path.read_text(errors="replace").splitlines() if path.is_file() else ["(missing)"]
            parts.append(f"==> {path} <==\n" + "\n".join(lines if tail is None else lines[-tail:]))
        return "\n".join(parts)


def place(src: Path, dest: Path) -> None:
    """Put a file or folder at ``dest`` as hard links to ``src`` (copies across file systems),
    replacing whatever was there."""
    if dest.exists():
        shutil.rmtree(dest) if dest.is_dir() else dest.unlink()
    if src.is_dir():
        shutil.copytree(src, dest, copy_function=_link_or_copy)
    else:
        _link_or_copy(str(src), str(dest))


def _link_or_copy(src: str, dst: str) -> str:
    """Hard-link (cheap, and stays inside the store for TorchServe's path checks), else copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst
