"""The doctor on one broken archive per cause (each built here), its fixed twin, and a clean archive:
each finding names the cause and the change that fixes it; the fixed twin has no error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.doctor.cases import PLAIN, Case, pairs
from ts_notebook.doctor import diagnose, explain_failure

PAIRS = pairs()
# A phrase of the fix each case must carry.
FIXES = {
    "missing_helper": "--extra-files helper.py",
    "missing_package": "pip install",
    "missing_file": "--extra-files vocab.txt",
    "absolute_path": "os.path.join(context.system_properties['model_dir'], 'vocab.txt')",
    "two_classes": "keep one class",
    "no_model_file": "--model-file",
    "pickled_model": "state_dict()",
    "wrong_shapes": "model file the weights were saved from",
    "slow_initialize": "startupTimeout",
    "config_typo": "rename it to batchSize",
    "gpu_on_cpu": "deviceType: cpu",
    "out_of_memory": "fewer workers",
}


@pytest.mark.parametrize("case", list(PAIRS))
def test_each_cause_is_found_with_its_fix_and_the_fixed_twin_is_clean(case: str, tmp_path: Path) -> None:
    broken, fixed, cause = PAIRS[case]
    report = diagnose(broken.build(tmp_path / "broken"))
    mine = [f for f in report.findings if f.cause == cause]
    assert mine, report.text()
    assert any(FIXES[case] in f.fix for f in mine), report.text()
    # an error where TorchServe refuses it; a GPU model on a CPU machine loads there, on the CPU: a warning
    assert report.errors if case != "gpu_on_cpu" else mine[0].severity == "warning", report.text()
    twin = diagnose(fixed.build(tmp_path / "fixed"))
    assert not twin.errors, twin.text()


def test_a_missing_import_also_says_torchserve_masks_it(tmp_path: Path) -> None:
    report = diagnose(PAIRS["missing_helper"][0].build(tmp_path))
    masked = [f for f in report.findings if f.cause == 1]
    assert masked and "No module named 'ts.torch_handler.handler'" in masked[0].fix
    assert masked[0].file == "handler.py" and masked[0].line == 1


def test_every_finding_is_reported_not_only_the_first(tmp_path: Path) -> None:
    handler = (
        "import helper\nimport os\n\n\ndef handle(data, context):\n    open('/home/dev/labels.json')\n    return data\n"
    )
    case = Case("many", {"handler.py": handler, "model-config.yaml": "minworkers: 2\nbatchSize: '4'\n"},
                manifest={"configFile": "model-config.yaml"})  # fmt: skip
    report = diagnose(case.build(tmp_path))
    assert {1, 2, 4, 9} <= report.causes(), report.text()
    assert len([f for f in report.findings if f.cause == 9]) == 2


def test_a_clean_archive_is_ok(tmp_path: Path) -> None:
    report = diagnose(Case("clean", {"handler.py": PLAIN}).build(tmp_path))
    assert report.ok, report.text()
    assert report.text().endswith("checked)") and ": ok" in report.text()
    assert "ok" in report._repr_html_()
    assert report.initialize_seconds is not None


def test_label_map_that_stays_none_is_a_warning(tmp_path: Path) -> None:
    handler = (
        "from ts.torch_handler.base_handler import BaseHandler\n\n\nclass Labels(BaseHandler):\n"
        "    def initialize(self, context):\n        self.mapping = None\n        self.initialized = True\n\n"
        "    def handle(self, data, context):\n        return [self.mapping for _ in data]\n"
    )
    report = diagnose(Case("labels", {"handler.py": handler}).build(tmp_path))
    label = [f for f in report.findings if f.cause == 4]
    assert label and label[0].severity == "warning" and "index_to_name.json" in label[0].fix, report.text()


def test_naming_clashes_are_found(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    Case("dup", {"handler.py": PLAIN}).build(store)  # a leftover dup.mar in the store
    source = Case("dup", {"handler.py": PLAIN + "\n"}).build(tmp_path / "new")
    report = diagnose(source, store=store, registered={("dup", "1.0")}, run=False)
    texts = [f.summary for f in report.findings if f.cause == 8]
    assert any("registered already" in t for t in texts) and any("dup.mar" in t for t in texts), report.text()
    bad = diagnose(Case("bad name!", {"handler.py": PLAIN}).build(tmp_path / "bad"), run=False)
    assert any(f.cause == 8 and "letters, digits" in f.fix for f in bad.findings)


def test_deployment_settings_and_requirements_policy(tmp_path: Path) -> None:
    config = tmp_path / "config.properties"
    config.write_text("inference_address=http://0.0.0.0:8080\n")
    case = Case("deploy", {"handler.py": PLAIN, "requirements.txt": "pyyaml\n"})
    report = diagnose(case.build(tmp_path / "a"), ts_config=config, run=False)
    fixes = " ".join(f.fix for f in report.findings)
    assert 11 in report.causes() and "enable_model_api=true" in fixes and "Authorization: Bearer" in fixes
    assert "install_py_dep_per_model=true" in fixes  # requirements.txt is ignored by default
    config.write_text("enable_model_api=true\ndisable_token_authorization=true\ninstall_py_dep_per_model=true\n")
    assert diagnose(case.build(tmp_path / "b"), ts_config=config, run=False).ok


def test_torch_or_python_ruled_out_by_the_requirements(tmp_path: Path) -> None:
    report = diagnose(
        Case("oldtorch", {"handler.py": PLAIN, "requirements.txt": "torch==1.0.0\n"}).build(tmp_path), run=False
    )
    torch_findings = [f for f in report.findings if f.cause == 10]
    assert torch_findings and "torch==1.0.0" in torch_findings[0].evidence


def test_weights_too_big_for_the_memory_free(tmp_path: Path) -> None:
    case = Case("big", {"handler.py": PLAIN, "w.bin": b"\0" * (4 << 20), "model-config.yaml": "minWorkers: 2\n"},
                manifest={"serializedFile": "w.bin", "configFile": "model-config.yaml"})  # fmt: skip
    report = diagnose(case.build(tmp_path), available_memory=4 << 20, run=False)
    assert any(f.cause == 12 and "8 MiB needed" in f.evidence for f in report.findings), report.text()


def test_a_worker_load_failure_is_explained_without_running_it_again(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    (folder / "MAR-INF").mkdir(parents=True)
    manifest = {"model": {"modelName": "h", "handler": "handler.py"}}
    (folder / "MAR-INF" / "MANIFEST.json").write_text(json.dumps(manifest))
    (folder / "handler.py").write_text("import helper\n")
    found = explain_failure(folder, "ModuleNotFoundError: No module named 'helper'", f"{folder}/handler.py:1", "")
    assert {1, 2} <= {f.cause for f in found}


def test_the_command_line_check(tmp_path: Path) -> None:
    broken = PAIRS["missing_helper"][0].build(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "ts_notebook.archive.cli", "check", str(broken)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "--extra-files helper.py" in proc.stdout
    clean = Case("clean", {"handler.py": PLAIN}).build(tmp_path / "clean")
    proc = subprocess.run([sys.executable, "-m", "ts_notebook.archive.cli", "check", str(clean)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert proc.returncode == 0 and ": ok" in proc.stdout
