"""``%ts_serve`` through a real IPython shell against a real backend subprocess."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from tests.assets import write_assets
from ts_notebook.serving import LogView, ServeStatus


@pytest.fixture(scope="module")
def shell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[InteractiveShell, Path]]:
    folder = tmp_path_factory.mktemp("serve")
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_RUNTIME_DIR", str(folder / "xdg"))
    (folder / "xdg").mkdir()
    mp.chdir(folder)
    assets = write_assets(folder / "assets")
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "ts_notebook")
    ip.run_line_magic("reload_ext", "ts_notebook")
    ip.run_line_magic(
        "mar_build",
        f"--model-name tiny -v 1.0 --model-file {assets}/model.py --serialized-file {assets}/tiny_state.pth "
        f"--handler {assets}/handler.py --extra-files {assets}/index_to_name.json",
    )
    (folder / "echo.py").write_text(
        "import logging\n\ndef handle(data, context):\n    if data is None:\n        return None\n"
        "    logging.info('echo got %d', len(data))\n    print('printed by the handler')\n"
        "    return [row.get('body') for row in data]\n"
    )
    ip.run_line_magic("mar_build", "--model-name echo -v 1 --handler echo.py")
    try:
        yield ip, folder
    finally:
        with contextlib.suppress(UsageError):  # a test may have stopped it already
            ip.run_line_magic("ts_serve", "stop")
        mp.undo()


def test_commands_before_start_say_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "ts_notebook")
    ip.run_line_magic("reload_ext", "ts_notebook")
    with pytest.raises(UsageError) as err:
        ip.run_line_magic("ts_serve", "status")
    assert str(err.value) == "no backend is running for this notebook: run %ts_serve start first"


def test_the_serving_loop(shell: tuple[InteractiveShell, Path]) -> None:
    ip, _ = shell
    status = ip.run_line_magic("ts_serve", "start")
    assert isinstance(status, ServeStatus)
    assert status.note.startswith("started in ") and status.note.endswith(" s (stops with this kernel)")
    assert status.inference_address.startswith("http://127.0.0.1:")
    assert status.models == []
    assert (
        ip.run_line_magic("ts_serve", "register tiny.mar")
        == 'Model "tiny" Version: 1.0 registered with 1 initial workers'
    )
    answer = ip.run_line_magic("ts_serve", """predict tiny '{"input": [1, 2, 3, 4]}'""")
    assert answer == pytest.approx([-0.36975, -0.10713, 0.09059], abs=1e-4)

    status = ip.run_line_magic("ts_serve", "status")
    assert [(m["modelName"], len(m["workers"])) for m in status.models] == [("tiny", 1)]
    assert "tiny 1.0  batch 1/100 ms  timeout 120 s  workers: 9000:READY" in repr(status)
    assert "class='tsn-status'" in status._repr_html_()

    assert ip.run_line_magic("ts_serve", "scale tiny --min-workers 2") == "Workers scaled to 2 for model: tiny"
    assert len(ip.run_line_magic("ts_serve", "status").models[0]["workers"]) == 2

    again = ip.run_line_magic("ts_serve", "start")
    assert again.note == f"reusing the running backend (pid {status.pid})"


def test_text_payloads_files_and_logs(shell: tuple[InteractiveShell, Path]) -> None:
    ip, folder = shell
    ip.run_line_magic("ts_serve", "start")
    ip.run_line_magic("ts_serve", "register echo.mar --name echo")
    assert ip.run_line_magic("ts_serve", "predict echo 'hello there'") == "hello there"
    (folder / "payload.bin").write_bytes(b"\x00\x01")
    assert ip.run_line_magic("ts_serve", "predict echo @payload.bin") == b"\x00\x01"
    logs = ip.run_line_magic("ts_serve", "logs echo --tail 20")
    assert isinstance(logs, LogView)
    text = repr(logs)
    assert "echo W-" in text and "INFO" in text and "echo got 1" in text
    assert "printed by the handler" in text
    assert ip.run_line_magic("ts_serve", "unregister echo") == 'Model "echo" unregistered'


def test_server_errors_are_usage_errors(shell: tuple[InteractiveShell, Path]) -> None:
    ip, _ = shell
    ip.run_line_magic("ts_serve", "start")
    with pytest.raises(UsageError) as err:
        ip.run_line_magic("ts_serve", "predict nope '{}'")
    assert str(err.value) == "POST /predictions/nope -> 404 ModelNotFoundException: Model not found: nope"
    with pytest.raises(UsageError, match="missing.mar: no such archive. Build one with %mar_build."):
        ip.run_line_magic("ts_serve", "register missing.mar")
    with pytest.raises(UsageError, match="%ts_serve: argument COMMAND: invalid choice: 'launch'"):
        ip.run_line_magic("ts_serve", "launch")


def test_stop(shell: tuple[InteractiveShell, Path]) -> None:
    ip, _ = shell
    status = ip.run_line_magic("ts_serve", "start")
    assert ip.run_line_magic("ts_serve", "stop") == f"stopped backend pid {status.pid}"
    with pytest.raises(UsageError, match="run %ts_serve start first"):
        ip.run_line_magic("ts_serve", "predict tiny '{}'")
