"""The notebook loop against real TorchServe: a ``%%handler`` cell, dry-run in the kernel, packaged
with ``%mar_build --handler NAME``, answers in TorchServe 0.12.0 exactly as the dry run did."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from tests.assets import HANDLER_PY, build_tiny
from ts_notebook.deploy.torchserve import TorchServe

pytestmark = pytest.mark.compat

PAYLOAD = '{"input": [1, 2, 3, 4]}'


@pytest.fixture
def shell(in_tmp: Path) -> Iterator[InteractiveShell]:
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "ts_notebook")
    ip.run_line_magic("reload_ext", "ts_notebook")
    yield ip


def test_handler_cell_packaged_answers_like_its_dry_run(
    shell: InteractiveShell, torchserve: TorchServe, model_assets: Path, in_tmp: Path
) -> None:
    a = model_assets
    weights = f"--model-file {a}/model.py --serialized-file {a}/tiny_state.pth"
    shell.run_line_magic("mar_build", f"--model-name weights_only -v 1 {weights} --handler base_handler")
    trace = shell.run_cell_magic("handler", f"tiny_cell --archive weights_only.mar --test '{PAYLOAD}'", HANDLER_PY)
    assert trace.ok, trace.failure

    info = shell.run_line_magic("mar_build", f"--model-name tiny_cell -v 1 {weights} --handler tiny_cell")
    assert info.manifest.handler == "tiny_cell.py"
    status, body = torchserve.serve_once(info.path, "tiny_cell", PAYLOAD.encode())
    assert status == 200, body
    assert json.loads(body) == trace.result[0]


def test_function_handler_cell_answers_like_its_dry_run(
    shell: InteractiveShell, torchserve: TorchServe, in_tmp: Path
) -> None:
    cell = (
        "def handle(data, context):\n"
        "    if data is None:\n"
        "        return None\n"
        "    return [{'got': row['body'], 'type': type(row['body']).__name__} for row in data]\n"
    )
    trace = shell.run_cell_magic("handler", "shout --test 'hello there'", cell)
    assert trace.ok, trace.failure
    info = shell.run_line_magic("mar_build", "--model-name shout -v 1 --handler shout")
    status, body = torchserve.serve_once(info.path, "shout", b"hello there", content_type="text/plain")
    assert status == 200, body
    assert json.loads(body) == trace.result[0] == {"got": "hello there", "type": "str"}


DRY_RUN_IN_REFERENCE_VENV = """
import json, sys
from ts_notebook.handler import dry_run, make_request
from ts_notebook.handler.compat import real_torchserve_installed
import ts.torch_handler.base_handler as real
model_dir = sys.argv[1]
manifest = json.load(open(model_dir + "/MAR-INF/MANIFEST.json"))
trace = dry_run("handler.py", model_dir, [make_request(sys.argv[2], "application/json")], model_name="tiny",
                manifest=manifest)
print(json.dumps({"real": real_torchserve_installed(), "base": real.__file__, "ok": trace.ok,
                  "failure": str(trace.failure), "result": trace.result, "stages": [s.name for s in trace.stages]}))
"""


def test_with_torchserve_installed_the_real_ts_classes_run_with_our_context(
    ts_ref_venv: Path, model_assets: Path, tmp_path: Path
) -> None:
    """In an environment that has torchserve, handlers get the real BaseHandler, and it works with our Context."""
    import subprocess

    from ts_notebook.archive import extract_archive
    from ts_notebook.handler import dry_run, make_request

    a = model_assets
    info = build_tiny(a, tmp_path)
    model_dir = extract_archive(info.path, tmp_path / "model")
    src = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [str(ts_ref_venv / "bin" / "python"), "-c", DRY_RUN_IN_REFERENCE_VENV, str(model_dir), PAYLOAD],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["real"] is True and got["base"].startswith(str(ts_ref_venv))
    assert got["ok"], got["failure"]
    assert got["stages"] == ["initialize", "preprocess", "inference", "postprocess"]
    manifest = json.loads((model_dir / "MAR-INF/MANIFEST.json").read_text())
    ours = dry_run(
        "handler.py", model_dir, [make_request(PAYLOAD, "application/json")], model_name="tiny", manifest=manifest
    )
    assert got["result"] == ours.result
