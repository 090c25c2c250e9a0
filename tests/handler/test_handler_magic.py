"""``%%handler`` through a real IPython shell: save, dry run, failures, reload, and packaging."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from tests.assets import HANDLER_PY
from ts_notebook.archive import open_archive
from ts_notebook.handler import SavedHandler, Trace

FUNC = (
    "def handle(data, context):\n    if data is None:\n        return None\n    return [row['body'] for row in data]\n"
)


@pytest.fixture
def shell(in_tmp: Path) -> Iterator[InteractiveShell]:
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "ts_notebook")
    ip.run_line_magic("reload_ext", "ts_notebook")  # a fresh workspace in this test's folder
    yield ip


@pytest.fixture
def tiny_mar(shell: InteractiveShell, assets: Path) -> str:
    shell.run_line_magic(
        "mar_build",
        f"--model-name tiny -v 1.0 --model-file {assets}/model.py --serialized-file {assets}/tiny_state.pth "
        f"--handler base_handler -c {assets}/model-config.yaml",
    )
    return "tiny.mar"


def test_cell_is_saved_and_named(shell: InteractiveShell, in_tmp: Path) -> None:
    saved = shell.run_cell_magic("handler", "echo", FUNC)
    assert isinstance(saved, SavedHandler)
    assert saved.path == in_tmp / ".ts_notebook" / "handlers" / "echo.py"
    assert saved.path.read_text() == FUNC
    assert repr(saved).endswith("package it with %mar_build --handler echo")


def test_syntax_error_points_at_the_cell_line(shell: InteractiveShell, in_tmp: Path) -> None:
    with pytest.raises(UsageError) as err:
        shell.run_cell_magic("handler", "broken", "import json\n\ndef handle(data, context):\n    return [\n")
    assert str(err.value).startswith("%%handler broken: line 4 of the cell: '[' was never closed")
    assert not (in_tmp / ".ts_notebook" / "handlers" / "broken.py").exists()


def test_no_entry_point_is_refused(shell: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="needs a top-level handle\\(data, context\\) function or exactly one class"):
        shell.run_cell_magic("handler", "empty", "x = 1\n")


def test_dry_run_with_an_archive_traces_every_stage(shell: InteractiveShell, tiny_mar: str) -> None:
    trace = shell.run_cell_magic(
        "handler", f"""tiny_h --archive {tiny_mar} --test '{{"input": [1, 2, 3, 4]}}' --batch 2""", HANDLER_PY
    )
    assert isinstance(trace, Trace) and trace.ok, trace.failure
    assert [s.name for s in trace.stages] == ["initialize", "preprocess", "inference", "postprocess"]
    assert trace.model_name == "tiny"
    assert trace.manifest is not None and trace.manifest["model"]["modelFile"] == "model.py"
    assert trace.model_yaml_config["handler"] == {"top_k": 2}
    assert trace.data == [{"body": {"input": [1, 2, 3, 4]}}] * 2
    text = repr(trace)
    assert text.splitlines()[0] == "handler tiny_h (class) for model tiny: ok"
    shown, _ = shell.display_formatter.format(trace)  # as the cell's value shows: the extension's widget
    assert "tsn-trace" in shown["text/html"] and shown["text/plain"] == text
    assert "application/vnd.jupyter.widget-view+json" in shown


def test_exception_in_initialize_is_the_cells_value(shell: InteractiveShell) -> None:
    cell = (
        "class H:\n    def initialize(self, context):\n        raise RuntimeError('no weights')\n\n"
        "    def handle(self, data, context):\n        return data\n"
    )
    trace = shell.run_cell_magic("handler", "h --test 1", cell)
    assert trace.failure is not None and trace.failure.stage == "initialize"
    assert str(trace.failure.where) == "h.py, line 3, in initialize: raise RuntimeError('no weights')"


def test_wrong_length_return(shell: InteractiveShell) -> None:
    cell = "def handle(data, context):\n    return None if data is None else [1, 2]\n"
    trace = shell.run_cell_magic("handler", "h --test 1 --batch 3", cell)
    assert trace.failure is not None
    assert trace.failure.message.startswith("handle returned a list of 2 for a batch of 3")


def test_content_type_headers_and_text_payloads(shell: InteractiveShell) -> None:
    cell = (
        "def handle(data, context):\n"
        "    return None if data is None else [(data[0], context.get_request_header(0, 'X-Mode'))]\n"
    )
    trace = shell.run_cell_magic("handler", "h --test 'hello world' --header X-Mode=echo", cell)
    assert trace.result == [({"body": "hello world"}, "echo")]
    trace = shell.run_cell_magic("handler", "h --test 'abc' --content-type application/octet-stream", cell)
    assert trace.result == [({"body": bytearray(b"abc")}, None)]


def test_test_file_payload(shell: InteractiveShell, in_tmp: Path) -> None:
    (in_tmp / "img.bin").write_bytes(b"\x89PNG")
    trace = shell.run_cell_magic("handler", "h --test-file img.bin", FUNC)
    assert trace.result == [bytearray(b"\x89PNG")]


def test_rerunning_the_cell_reloads_the_handler(shell: InteractiveShell) -> None:
    assert shell.run_cell_magic("handler", "h --test 1", FUNC).result == [1]
    changed = FUNC.replace("row['body']", "row['body'] * 10")
    assert shell.run_cell_magic("handler", "h --test 1", changed).result == [10]


def test_mar_build_packages_a_handler_cell_by_name(shell: InteractiveShell, in_tmp: Path) -> None:
    shell.run_cell_magic("handler", "echo", FUNC)
    info = shell.run_line_magic("mar_build", "--model-name echo_model -v 1 --handler echo")
    assert info.manifest.handler == "echo.py"
    assert set(info.names) == {"echo.py"}
    assert open_archive(in_tmp / "echo_model.mar").manifest.handler == "echo.py"


def test_bad_header_option(shell: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="--header 'X-Mode': write it as NAME=VALUE"):
        shell.run_cell_magic("handler", "h --test 1 --header X-Mode", FUNC)


def test_model_dir_option_gives_that_folder_and_its_manifest(
    shell: InteractiveShell, tiny_mar: str, in_tmp: Path
) -> None:
    shell.run_line_magic("mar_inspect", f"{tiny_mar} --extract model_dir")
    trace = shell.run_cell_magic(
        "handler", """tiny_h --model-dir model_dir --test '{"input": [1, 2, 3, 4]}'""", HANDLER_PY
    )
    assert trace.ok, trace.failure
    assert trace.system_properties["model_dir"] == str(in_tmp / "model_dir")
    assert trace.manifest["model"]["handler"] == "tiny_h.py"  # as the archive %mar_build --handler tiny_h makes
    assert not (in_tmp / "model_dir" / "tiny_h.py").exists()  # the user's folder is not written to


def test_model_dir_and_archive_together_are_refused(shell: InteractiveShell, tiny_mar: str) -> None:
    with pytest.raises(UsageError, match="pass --model-dir or --archive, not both"):
        shell.run_cell_magic("handler", f"h --model-dir . --archive {tiny_mar} --test 1", FUNC)


def test_archive_cache_tells_folders_apart_by_file_names(shell: InteractiveShell, in_tmp: Path) -> None:
    for name in ("labels_v1.json", "labels_v2.json"):
        folder = in_tmp / name.removesuffix(".json")
        folder.mkdir()
        (folder / name).write_text("{}")
    cell = "import os\n\ndef handle(data, context):\n    return None if data is None else [sorted(os.listdir('.'))]\n"
    assert shell.run_cell_magic("handler", "h --archive labels_v1 --test 1", cell).result == [["labels_v1.json"]]
    assert shell.run_cell_magic("handler", "h --archive labels_v2 --test 1", cell).result == [["labels_v2.json"]]
