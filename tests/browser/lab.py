"""Real-browser harness: a private JupyterLab server driven by headless Chromium through Playwright.

Usage::

    from tests.browser.lab import JupyterLab, require_browser

    require_browser()                      # pytest.skip(...) when Chromium or playwright is missing
    with JupyterLab(tmp_path) as lab:
        lab.write_notebook("x.ipynb", ["import ipywidgets as w; w.Button()"])
        with lab.notebook_page("x.ipynb") as nb:
            nb.run_all()                   # Run -> Run All Cells, waits until every cell has replied
            nb.wait_for(".tsn-foo", timeout=60)
            nb.click(".tsn-foo button")
            nb.fill(".tsn-bar textarea", "text")
            nb.wait_for_text(".tsn-label", "pressed")
            nb.resize(1400, 1500)          # returns once JupyterLab has laid out at the new size
            nb.screenshot("tests/browser/artifacts/x.png")
            nb.page                        # the Playwright Page, for anything else

The server runs from this interpreter's environment (the project venv) on 127.0.0.1 with a free
port and a random token. Every Jupyter/IPython/HOME/XDG folder it reads or writes is under the
given temporary folder, and the ``python3`` kernelspec is one written there (first on
``JUPYTER_PATH``) whose argv is ``[sys.executable, -m, ipykernel_launcher, -f, {connection_file}]``,
so notebooks always run on the project venv. Chromium is Debian's ``/usr/bin/chromium`` (override
with ``TSN_CHROMIUM``); the harness never downloads a browser.

This module is the server; ``tests.browser.chromium`` finds and launches the browser and
``tests.browser.page`` drives one open notebook (``NotebookPage``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tests.browser.chromium import CHROMIUM, Chromium, browser_missing_reason, require_browser
from tests.browser.page import NotebookPage

__all__ = [
    "CHROMIUM",
    "KERNEL_NAME",
    "JupyterLab",
    "LabError",
    "NotebookPage",
    "browser_missing_reason",
    "require_browser",
]

KERNEL_NAME = "python3"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


class LabError(RuntimeError):
    pass


class JupyterLab:
    """A JupyterLab server of its own under ``base`` (a temp folder), plus a lazily launched Chromium.

    Attributes after start(): ``url`` (http://127.0.0.1:PORT), ``token``, ``port``, ``root_dir``
    (the server's root: notebooks go there), ``log_path`` (server stdout+stderr), ``proc``.
    """

    def __init__(
        self,
        base: str | os.PathLike[str],
        *,
        startup_timeout: float = 120.0,
        stop_timeout: float = 15.0,
        viewport: tuple[int, int] = (1280, 900),
    ) -> None:
        self.base = Path(base).resolve()
        self.root_dir = self.base / "root"
        self.log_path = self.base / "jupyterlab.log"
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.viewport = viewport
        self.token = secrets.token_hex(24)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None
        self._chromium = Chromium(self.base / "browser-home")

    # ---------------------------------------------------------------- server

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _prepare_dirs(self) -> dict[str, str]:
        d = {
            "HOME": self.base / "home",
            "JUPYTER_CONFIG_DIR": self.base / "jupyter-config",
            "JUPYTER_DATA_DIR": self.base / "jupyter-data",
            "JUPYTER_RUNTIME_DIR": self.base / "jupyter-runtime",
            "JUPYTER_PATH": self.base / "jupyter-path",
            "JUPYTERLAB_SETTINGS_DIR": self.base / "lab-user-settings",
            "JUPYTERLAB_WORKSPACES_DIR": self.base / "lab-workspaces",
            "IPYTHONDIR": self.base / "ipython",
            "XDG_CONFIG_HOME": self.base / "xdg-config",
            "XDG_DATA_HOME": self.base / "xdg-data",
            "XDG_CACHE_HOME": self.base / "xdg-cache",
            "MPLCONFIGDIR": self.base / "mpl",
        }
        for p in [self.root_dir, *d.values()]:
            p.mkdir(parents=True, exist_ok=True)

        # The python3 kernelspec: JUPYTER_PATH comes first in jupyter_path('kernels'), so this one wins.
        kdir = d["JUPYTER_PATH"] / "kernels" / KERNEL_NAME
        kdir.mkdir(parents=True, exist_ok=True)
        (kdir / "kernel.json").write_text(
            json.dumps(
                {
                    "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                    "display_name": "Python 3 (ipykernel)",
                    "language": "python",
                    "metadata": {"debugger": False},
                },
                indent=1,
            )
        )

        # No news prompt, no update check: nothing in the screenshots but the notebook.
        ns = d["JUPYTERLAB_SETTINGS_DIR"] / "@jupyterlab" / "apputils-extension"
        ns.mkdir(parents=True, exist_ok=True)
        (ns / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False})
        )
        env = dict(os.environ)
        for k in ("JUPYTER_TOKEN", "JUPYTER_CONFIG_PATH", "JUPYTER_PREFER_ENV_PATH", "JUPYTERLAB_DIR"):
            env.pop(k, None)
        env.update({k: str(v) for k, v in d.items()})
        env["PYTHONNOUSERSITE"] = "1"
        env["PYTHONUNBUFFERED"] = "1"
        env["JUPYTER_PLATFORM_DIRS"] = "1"
        return env

    def _command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--allow-root",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={self.root_dir}",
            f"--IdentityProvider.token={self.token}",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--KernelSpecManager.ensure_native_kernel=False",
        ]

    def start(self) -> JupyterLab:
        if self.proc is not None:
            return self
        env = self._prepare_dirs()
        last = ""
        for _attempt in range(3):  # a free port can be taken between choosing and binding it
            self.port = _free_port()
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
            self.proc = subprocess.Popen(
                self._command(),
                cwd=self.root_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
            )
            try:
                self._wait_ready()
                return self
            except LabError as e:
                last = str(e)
                exited = self.proc.poll() is not None
                self.stop()
                if not exited:  # it ran but never answered: retrying will not help
                    break
        raise LabError(last)

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.startup_timeout
        status = f"{self.url}/api/status?token={self.token}"
        while True:
            if self.proc.poll() is not None:
                raise LabError(
                    f"jupyter lab exited with {self.proc.returncode} before answering;"
                    f" log tail:\n{_tail(self.log_path)}"
                )
            try:
                with urllib.request.urlopen(status, timeout=5) as r:
                    if r.status == 200:
                        json.load(r)
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise LabError(
                    f"jupyter lab did not answer {self.url}/api/status within"
                    f" {self.startup_timeout:.0f}s; log tail:\n{_tail(self.log_path)}"
                )
            time.sleep(0.25)

    def api(self, path: str, method: str = "GET", body: Any = None, timeout: float = 30) -> Any:
        """Call the server's REST API (``path`` like ``/api/kernels``); returns decoded JSON or None."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    def shutdown_kernels(self) -> None:
        """Delete every session (which shuts its kernel down), then any kernel left."""
        with contextlib.suppress(Exception):
            for s in self.api("/api/sessions", timeout=5):
                with contextlib.suppress(Exception):
                    self.api(f"/api/sessions/{s['id']}", method="DELETE", timeout=15)
        with contextlib.suppress(Exception):
            for k in self.api("/api/kernels", timeout=5):
                with contextlib.suppress(Exception):
                    self.api(f"/api/kernels/{k['id']}", method="DELETE", timeout=15)

    def stop(self) -> None:
        """Close the browser, shut kernels down, SIGTERM the server, wait, then SIGKILL it."""
        self.close_browser()
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                self.shutdown_kernels()
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    proc.wait(timeout=self.stop_timeout)
            else:
                proc.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> JupyterLab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------- notebooks

    def write_notebook(self, name: str, cells: Sequence[str], *, markdown: Sequence[str] = ()) -> Path:
        """Write ``root_dir/name`` with the given code cells (after optional markdown cells),
        with python3 kernelspec metadata so JupyterLab starts the kernel without asking."""
        import nbformat

        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {
            "name": KERNEL_NAME,
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
        }
        nb.metadata["language_info"] = {"name": "python"}
        nb.cells = [nbformat.v4.new_markdown_cell(m) for m in markdown] + [nbformat.v4.new_code_cell(c) for c in cells]
        path = self.root_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(path))
        return path

    # --------------------------------------------------------------- browser

    def browser(self) -> Any:
        """The Playwright Browser (Debian Chromium), launched on first use."""
        return self._chromium.browser()

    def close_browser(self) -> None:
        self._chromium.close()

    @contextlib.contextmanager
    def notebook_page(self, name: str, *, timeout: float = 120.0) -> Iterator[NotebookPage]:
        """Open ``/lab/workspaces/<fresh>/tree/NAME?token=`` (``/lab/tree/NAME`` in a workspace of
        its own) in a fresh browser context; yields a NotebookPage once the notebook is open and
        its kernel has started. Closes the context and shuts the server's kernels down after."""
        if self.proc is None:
            raise LabError("JupyterLab is not running")
        context = self.browser().new_context(viewport={"width": self.viewport[0], "height": self.viewport[1]})
        try:
            page = context.new_page()
            nb = NotebookPage(self, page, name)
            nb.open(timeout=timeout)
            yield nb
        finally:
            with contextlib.suppress(Exception):
                context.close()
            self.shutdown_kernels()
