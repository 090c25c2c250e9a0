"""What each export writes, what it chooses and warns about, and that a failed export leaves nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.assets import build_tiny
from ts_notebook.deploy import cli
from ts_notebook.deploy.export import export
from ts_notebook.deploy.source import ExportError, from_archive, from_description
from ts_notebook.properties import read_properties


@pytest.fixture
def archive(assets: Path, tmp_path: Path) -> Path:
    return build_tiny(assets, tmp_path / "built", config_file=str(assets / "model-config.yaml")).path


def snapshot_of(props: dict[str, str]) -> dict[str, object]:
    model = json.loads(props["model_snapshot"])["models"]["tiny"]["1.0"]
    assert isinstance(model, dict)
    return model


def test_torchserve_export_loads_the_model_at_start_with_safe_defaults(archive: Path, tmp_path: Path) -> None:
    report = export(from_archive(archive), "torchserve", tmp_path / "out")
    out = tmp_path / "out"
    props = read_properties(out / "config" / "config.properties")
    assert props["inference_address"] == "http://0.0.0.0:8080"
    assert (props["disable_token_authorization"], props["enable_model_api"]) == ("false", "false")
    assert props["model_store"] == "/home/model-server/model-store"
    assert snapshot_of(props) == {
        "defaultVersion": True, "marName": "tiny.mar", "minWorkers": 1, "maxWorkers": 1, "batchSize": 1,
        "maxBatchDelay": 100, "responseTimeout": 30,
    }  # fmt: skip
    assert (out / "model-store" / "tiny.mar").read_bytes() == archive.read_bytes()
    assert "FROM pytorch/torchserve:0.12.0-cpu" in (out / "Dockerfile").read_text()
    why = {c.setting: c.why for c in report.choices}
    assert why["responseTimeout"] == "the archive's model-config.yaml"
    assert why["maxBatchDelay"] == "TorchServe's default"
    assert "key_file.json" in why["token authorization"]
    assert any(line.startswith("docker run") for line in report.commands)
    assert "## Settings chosen" in (out / "DEPLOY.md").read_text()


def test_a_served_gpu_model_exports_its_served_settings_on_the_gpu_image(archive: Path, tmp_path: Path) -> None:
    described = {"modelName": "tiny", "modelVersion": "1.0", "minWorkers": 2, "maxWorkers": 3, "batchSize": 4,
                 "maxBatchDelay": 50, "responseTimeout": 9, "deviceType": "gpu", "workers": []}  # fmt: skip
    source = from_description(described, archive)
    report = export(source, "torchserve", tmp_path / "out", **cli.options(cli.export_parser().parse_args(
        ["tiny", "--to", "torchserve", "x", "--no-token", "--model-api", "--port", "9080"])))  # fmt: skip
    props = read_properties(tmp_path / "out" / "config" / "config.properties")
    assert snapshot_of(props)["batchSize"] == 4 and snapshot_of(props)["maxWorkers"] == 3
    assert props["management_address"] == "http://0.0.0.0:9081"
    assert (props["disable_token_authorization"], props["enable_model_api"]) == ("true", "true")
    assert "FROM pytorch/torchserve:0.12.0-gpu" in (tmp_path / "out" / "Dockerfile").read_text()
    assert "--gpus all" in " ".join(report.commands)
    assert {c.setting: c.why for c in report.choices}["batchSize"] == "what the served model runs"


def test_kserve_export_keeps_the_batch_rule_and_both_server_paths(archive: Path, tmp_path: Path) -> None:
    source = from_archive(archive).with_settings(batchSize=4, maxBatchDelay=20)
    report = export(source, "kserve", tmp_path / "out", kserve=cli.options(cli.export_parser().parse_args(
        ["tiny", "--to", "kserve", "x", "--protocol", "v2"]))["kserve"])  # fmt: skip
    out = tmp_path / "out"
    props = read_properties(out / "torchserve-runtime" / "config" / "config.properties")
    assert props["service_envelope"] == "kservev2" and snapshot_of(props)["batchSize"] == 1
    assert props["disable_token_authorization"] == "true" and props["enable_model_api"] == "true"
    assert props["model_store"] == "/mnt/models/model-store"
    service = yaml.safe_load((out / "inferenceservice-torchserve.yaml").read_text())
    predictor = service["spec"]["predictor"]
    assert predictor["model"]["modelFormat"] == {"name": "pytorch"} and predictor["model"]["protocolVersion"] == "v2"
    assert predictor["batcher"] == {"maxBatchSize": 4, "maxLatency": 20}
    assert any("batchSize 4 is written as 1" in w for w in report.warnings)
    assert any("storageUri is a placeholder" in w for w in report.warnings)
    python = yaml.safe_load((out / "inferenceservice-python.yaml").read_text())
    assert python["spec"]["predictor"]["containers"][0]["args"] == ["--model_name", "tiny", "--protocol", "v2"]
    assert (out / "python-server" / "ts_notebook" / "deploy" / "runtime.py").is_file()
    assert "kserve==0.21.0" in (out / "python-server" / "requirements.txt").read_text()
    compile((out / "python-server" / "model.py").read_text(), "model.py", "exec")


def test_ray_export_maps_workers_and_batching(archive: Path, tmp_path: Path) -> None:
    source = from_archive(archive).with_settings(minWorkers=1, maxWorkers=3, batchSize=4, maxBatchDelay=250)
    report = export(source, "ray", tmp_path / "out")
    config = yaml.safe_load((tmp_path / "out" / "serve_config.yaml").read_text())
    app = config["applications"][0]
    assert app["route_prefix"] == "/predictions/tiny" and app["import_path"] == "app:app"
    assert app["deployments"][0]["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 3}
    assert config["http_options"]["request_timeout_s"] == 30
    code = (tmp_path / "out" / "app.py").read_text()
    assert "@serve.batch(max_batch_size=4, batch_wait_timeout_s=0.25)" in code
    compile(code, "app.py", "exec")
    assert any("no token auth" in w for w in report.warnings)


def test_a_failed_export_leaves_nothing_and_a_full_folder_is_kept(archive: Path, tmp_path: Path) -> None:
    full = tmp_path / "full"
    full.mkdir()
    (full / "mine.txt").write_text("keep me")
    with pytest.raises(ExportError, match="exists and is not empty: choose a new folder, or pass --force"):
        export(from_archive(archive), "ray", full)
    assert [p.name for p in full.iterdir()] == ["mine.txt"]
    with pytest.raises(ExportError, match="KServe speaks v1 or v2"):
        export(from_archive(archive), "kserve", tmp_path / "new", kserve=cli.KServeOptions(protocol="v3"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["built", "full"]  # no staging folder left behind
    with pytest.raises(ExportError, match="no such archive"):
        from_archive(tmp_path / "missing.mar")


def test_the_command_line_exports(archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([str(archive), "--to", "torchserve", str(tmp_path / "cli")]) == 0
    assert "exported tiny for torchserve" in capsys.readouterr().out
    assert cli.main([str(archive), "--to", "torchserve", str(tmp_path / "cli")]) == 2
    assert "pass --force" in capsys.readouterr().err


def test_the_shipped_runtime_imports_on_its_own(tmp_path: Path) -> None:
    """Every module an export ships imports from the copy alone (a core module it needs and does not ship
    would fail only on the target: this is how a missing jsontypes.py broke LitServe's runtime)."""
    import os
    import subprocess
    import sys
    import sysconfig

    from ts_notebook.deploy.vendor import copy_runtime

    package = copy_runtime(tmp_path)
    modules = sorted(
        "ts_notebook." + ".".join(p.relative_to(package).with_suffix("").parts).removesuffix(".__init__")
        for p in package.rglob("*.py")
    )
    code = "\n".join(
        ["import importlib, sys", "for m in sys.argv[1:]:", "    importlib.import_module(m)",
         "import ts_notebook", "print(ts_notebook.__file__)"]
    )  # fmt: skip
    run = subprocess.run(
        # -S: no site, so no .pth runs and this checkout's editable install cannot fill in a missing file;
        # the venv's packages (torch, PyYAML) stay importable as plain folders after the copy.
        [sys.executable, "-S", "-c", code, *modules],
        env={"PYTHONPATH": os.pathsep.join([str(tmp_path), sysconfig.get_paths()["purelib"]]), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,  # not the checkout: python -c puts the working folder first on sys.path
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == str(package / "__init__.py")
