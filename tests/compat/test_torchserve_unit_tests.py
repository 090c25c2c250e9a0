"""TorchServe's own handler unit tests (shipped in the torchserve wheel, ts/torch_handler/unit_tests/),
run twice in fresh interpreters: with the real torchserve importable, and with only our compatibility
layer answering ``import ts`` (torchserve not importable). Every test that passes with torchserve must
pass under the layer; tests that need torchvision skip on both sides, saying so."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.compat

REPO = Path(__file__).resolve().parents[2]
TORCHVISION_SKIP = "needs torchvision, which has no CPU wheel for this torch here"
CONFTEST = f"""
import importlib.abc
import importlib.util
import os
import sys

import pytest

if os.environ["TS_UNIT_SIDE"] == "compat":
    from ts_notebook.handler.compat import install

    install()
NEEDS_TORCHVISION = ("torchvision", "ts.torch_handler.image_classifier", "ts.torch_handler.object_detector",
                     "ts.torch_handler.image_segmenter", "ts.torch_handler.vision_handler")


class SkipWithoutTorchvision(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in NEEDS_TORCHVISION:
            raise pytest.skip.Exception({TORCHVISION_SKIP!r}, allow_module_level=True)
        return None


if importlib.util.find_spec("torchvision") is None:
    sys.meta_path.insert(0, SkipWithoutTorchvision())
"""


def _site_packages(venv: Path) -> Path:
    return next(venv.glob("lib/python*/site-packages"))


def _run(side: str, root: Path, ref_site: Path) -> dict[str, tuple[str, str]]:
    """test id -> (outcome, message) for one side."""
    report = root / f"{side}.xml"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TS_CONFIG_FILE")}
    env["TS_UNIT_SIDE"] = side
    # The real side sees the reference venv's torchserve; ours sees the repository and no torchserve.
    env["PYTHONPATH"] = str(ref_site) if side == "real" else str(REPO)
    env.pop("ENABLE_TORCH_PROFILER", None)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(root / "pytest.ini")]
    cmd += ["--rootdir", str(root), f"--junitxml={report}", "unit_tests"]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert report.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    outcomes: dict[str, tuple[str, str]] = {}
    for case in ET.parse(report).iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        for kind in ("failure", "error", "skipped"):
            found = case.find(kind)
            if found is not None:
                outcomes[test_id] = (kind, (found.get("message") or "") + (found.text or "")[-800:])
                break
        else:
            outcomes[test_id] = ("passed", "")
    return outcomes


@pytest.fixture(scope="module")
def sides(ts_ref_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, tuple[str, str]]]:
    ref_site = _site_packages(ts_ref_venv)
    root = tmp_path_factory.mktemp("ts-unit-tests")
    shutil.copytree(ref_site / "ts" / "torch_handler" / "unit_tests", root / "unit_tests")
    (root / "conftest.py").write_text(CONFTEST)
    (root / "pytest.ini").write_text("[pytest]\n")
    return {side: _run(side, root, ref_site) for side in ("real", "compat")}


def test_every_test_passing_with_torchserve_passes_under_our_layer(
    sides: dict[str, dict[str, tuple[str, str]]],
) -> None:
    real, compat = sides["real"], sides["compat"]
    passing = sorted(t for t, (outcome, _) in real.items() if outcome == "passed")
    assert len(passing) >= 8, real  # base handler (3) and envelopes (5) at least
    broken = {t: compat.get(t) for t in passing if compat.get(t, ("missing", ""))[0] != "passed"}
    assert not broken, broken


def test_tests_needing_torchvision_skip_on_both_sides_with_the_reason(
    sides: dict[str, dict[str, tuple[str, str]]],
) -> None:
    for side, outcomes in sides.items():
        skipped = {t: m for t, (o, m) in outcomes.items() if o == "skipped"}
        assert skipped, (side, outcomes)
        assert all(TORCHVISION_SKIP in m for m in skipped.values()), (side, skipped)
        assert not [t for t, (o, _) in outcomes.items() if o in ("failure", "error")], (side, outcomes)
    assert {t for t, (o, _) in sides["real"].items() if o == "skipped"} == {
        t for t, (o, _) in sides["compat"].items() if o == "skipped"
    }
