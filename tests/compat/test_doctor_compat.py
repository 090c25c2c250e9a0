"""The doctor explains real failures: each broken archive of tests/doctor/cases.py fails to load in real
TorchServe 0.12.0 (or, where TorchServe loads it anyway, silently loses what was asked), and its fixed
twin loads there."""

from __future__ import annotations

import json
import shutil
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.doctor.cases import PLAIN, Case, pairs
from ts_notebook.deploy.torchserve import TorchServe

from .embedded import http

pytestmark = pytest.mark.compat
PAIRS = pairs()
# Broken archives TorchServe 0.12.0 registers anyway, and what it loses without a word.
SILENT = {
    "config_typo": lambda d: d["batchSize"] == 1,  # the asked-for batchSize 4 is lost
    "gpu_on_cpu": lambda d: d["workers"][0]["gpu"] is False,  # the GPU asked for: it runs on the CPU
}


@pytest.fixture(scope="module")
def torchserve_here(ts_ref_venv: Path) -> Iterator[TorchServe]:
    ts = TorchServe(ts_ref_venv, startup_timeout=120)
    try:
        yield ts.start()
    finally:
        ts.stop()


def _register(ts: TorchServe, archive: Path, as_name: str) -> tuple[int, str]:
    target = ts.store / f"{as_name}.mar"
    shutil.copy(archive, target)
    query = urllib.parse.urlencode({"url": target.name, "initial_workers": 1, "synchronous": "true"})
    status, body, _ = http("POST", f"{ts.management_url}/models?{query}", timeout=120)
    return status, body.decode(errors="replace")


@pytest.mark.parametrize("case", list(PAIRS))
def test_broken_fails_in_torchserve_and_the_fix_loads(torchserve_here: TorchServe, case: str, tmp_path: Path) -> None:
    ts = torchserve_here
    broken, fixed, _ = PAIRS[case]
    name = broken.name
    try:
        status, body = _register(ts, broken.build(tmp_path / "broken"), f"{name}_broken")
        if case in SILENT:
            assert status == 200, body
            described = json.loads(http("GET", f"{ts.management_url}/models/{name}")[1])[0]
            assert SILENT[case](described), described
        else:
            assert status != 200, body
    finally:
        http("DELETE", f"{ts.management_url}/models/{name}")
    try:
        status, body = _register(ts, fixed.build(tmp_path / "fixed"), f"{name}_fixed")
        assert status == 200, body
    finally:
        http("DELETE", f"{ts.management_url}/models/{name}")


def test_a_version_registered_twice_is_refused_and_the_doctor_says_so(
    torchserve_here: TorchServe, tmp_path: Path
) -> None:
    from ts_notebook.doctor import diagnose

    archive = Case("twice", {"handler.py": PLAIN}).build(tmp_path)
    try:
        assert _register(torchserve_here, archive, "twice")[0] == 200
        status, body = _register(torchserve_here, archive, "twice_again")
        assert status == 409, body
    finally:
        http("DELETE", f"{torchserve_here.management_url}/models/twice")
    report = diagnose(archive, registered={("twice", "1.0")}, run=False)
    assert any(f.cause == 8 and "409" in f.summary for f in report.findings)


def test_torchserves_default_settings_refuse_registration_as_the_doctor_warns(
    ts_ref_venv: Path, tmp_path: Path
) -> None:
    from ts_notebook.doctor import diagnose

    defaults = {"enable_model_api": "false"}  # TorchServe 0.12's default (tokens stay off for the runner's /ping)
    archive = Case("defaults", {"handler.py": PLAIN}).build(tmp_path)
    with TorchServe(ts_ref_venv, config=defaults, startup_timeout=120) as ts:
        status, body = _register(ts, archive, "defaults")
        config = shutil.copy(ts.config_path, tmp_path / "config.properties")  # the file it really ran with
    assert status != 200, body
    report = diagnose(archive, ts_config=config, run=False)
    assert any(f.cause == 11 and "enable_model_api=true" in f.fix for f in report.findings), report.text()
