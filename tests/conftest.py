from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.assets import write_assets

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only folder of model inputs (see tests/assets.py); copy before changing anything."""
    return write_assets(tmp_path_factory.mktemp("assets"))


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test from an empty folder, as a user runs the archiver from their project folder."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
