from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.lab import JupyterLab, require_browser

ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    """One private JupyterLab server (project venv kernel) plus headless Chromium for the session.

    Skips when /usr/bin/chromium or the playwright package is missing (tests/browser/INSTALL.md).
    """
    require_browser()
    with JupyterLab(tmp_path_factory.mktemp("jupyterlab")) as server:
        yield server


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """tests/browser/artifacts/: screenshots the browser tests leave for people to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
