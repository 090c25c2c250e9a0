"""Debian's Chromium, headless through Playwright: where it is, whether the tests can run, launching it.

The harness never downloads a browser (see tests/browser/INSTALL.md); ``TSN_CHROMIUM`` overrides the path.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("TSN_CHROMIUM", "/usr/bin/chromium")

# Flags known to work on this machine kind (see INSTALL.md). Playwright adds --headless and a fresh
# temporary --user-data-dir itself (it refuses a --user-data-dir in args for launch()).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def browser_missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} not found: install Debian's chromium and chromium-driver (see tests/browser/INSTALL.md)"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (see tests/browser/INSTALL.md)"
    return None


def require_browser() -> None:
    """pytest.skip with the reason when Chromium or playwright is missing; under CI (which installs
    both, see INSTALL.md) a missing browser is a failure, so the browser tests can never silently skip."""
    reason = browser_missing_reason()
    if reason is not None:
        import pytest

        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests, but {reason}")
        pytest.skip(reason)


class Chromium:
    """One headless Chromium, launched on first use, whose HOME is ``home`` (a temp folder)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._pw: Any = None
        self._browser: Any = None

    def browser(self) -> Any:
        """The Playwright Browser, launched on first use."""
        if self._browser is None:
            require_browser()
            from playwright.sync_api import sync_playwright

            self.home.mkdir(parents=True, exist_ok=True)
            env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
            env["HOME"] = str(self.home)  # Chromium's ~/.pki and ~/.config stay in the temp folder
            self._pw = sync_playwright().start()
            try:
                self._browser = self._pw.chromium.launch(
                    executable_path=CHROMIUM,
                    headless=True,
                    args=CHROMIUM_ARGS,
                    env=env,
                    timeout=60_000,
                )
            except BaseException:
                self._pw.stop()
                self._pw = None
                raise
        return self._browser

    def close(self) -> None:
        b, self._browser = self._browser, None
        pw, self._pw = self._pw, None
        if b is not None:
            with contextlib.suppress(Exception):
                b.close()
        if pw is not None:
            with contextlib.suppress(Exception):
                pw.stop()
