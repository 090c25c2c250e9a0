"""``%ts_serve`` as a new user meets it: clean help, one tracked backend per notebook, a status that
says how to reach it from a terminal, describe / set-default / metrics, and an unload that stops
what the kernel started. Real backends, a real IPython shell."""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from tests.assets import write_assets
from tests.backend.helpers import wait_until
from tests.shells import notebook_shell
from ts_notebook import launcher
from ts_notebook.serving import MetricsText, ServeStatus


@pytest.fixture
def ip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    with notebook_shell(tmp_path, monkeypatch) as shell:
        assets = write_assets(tmp_path / "assets")
        store = tmp_path / ".ts_notebook" / "model_store"  # where %ts_serve start looks by default
        store.mkdir(parents=True)
        shell.run_line_magic(
            "mar_build",
            f"--model-name tiny -v 1.0 --model-file {assets}/model.py --serialized-file {assets}/tiny_state.pth "
            f"--handler {assets}/handler.py --extra-files {assets}/index_to_name.json --export-path {store}",
        )
        yield shell


@pytest.mark.parametrize("line", ["-h", "start -h", "register -h", "predict --help", "set-default -h"])
def test_help_at_every_level_prints_and_returns(
    ip: InteractiveShell, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ip.run_line_magic("ts_serve", line) is None
    out = capsys.readouterr().out
    assert out.startswith("usage: %ts_serve")
    if line.startswith("start"):
        assert re.search(r"--timeout S +seconds to wait for it to serve", out)
        assert "--replace" in out
    if line.startswith("register"):
        assert "--batch-size B" in out and "requests per batch" in out
        assert "seconds before a busy worker is killed" in out


def test_the_magic_help_is_generated_from_the_parser(ip: InteractiveShell) -> None:
    doc = ip.find_line_magic("ts_serve").__doc__
    for sub in ("start", "register", "describe", "set-default", "metrics", "--replace", "--timeout S"):
        assert sub in doc


def test_a_second_start_with_other_settings_starts_nothing_until_replace(ip: InteractiveShell) -> None:
    first = ip.run_line_magic("ts_serve", "start")
    with pytest.raises(UsageError) as err:
        ip.run_line_magic("ts_serve", "start --workers 2")
    message = str(err.value)
    assert f"already running with other settings (pid {first.pid}" in message
    assert "--replace" in message and "%ts_serve stop" in message
    assert launcher.is_alive(first.pid)
    assert ip.run_line_magic("ts_serve", "status").pid == first.pid

    second = ip.run_line_magic("ts_serve", "start --workers 2 --replace")
    assert second.pid != first.pid and second.note.startswith("started in ")
    assert not launcher.is_alive(first.pid)
    assert ip.run_line_magic("ts_serve", "stop") == f"stopped backend pid {second.pid}"
    with pytest.raises(UsageError, match="no backend is running for this notebook: nothing to stop"):
        ip.run_line_magic("ts_serve", "stop")


def test_start_reports_each_model_that_failed_to_load(ip: InteractiveShell) -> None:
    status = ip.run_line_magic("ts_serve", "start --models tiny=tiny.mar foo=missing.mar")
    assert [m["modelName"] for m in status.models] == ["tiny"]
    assert list(status.failed_models) == ["foo=missing.mar"]
    assert "missing.mar" in status.failed_models["foo=missing.mar"]
    text = repr(status)
    assert "FAILED to load foo=missing.mar: " in text
    assert "failed to load" in status._repr_html_()


def test_status_gives_the_key_file_and_curl_lines_that_work(ip: InteractiveShell) -> None:
    ip.run_line_magic("ts_serve", "start --models tiny=tiny.mar")
    status = ip.run_line_magic("ts_serve", "status")
    assert isinstance(status, ServeStatus)
    assert status.key_file is not None and Path(status.key_file).is_file()
    text = repr(status)
    assert f"tokens: {status.key_file}" in text
    predict_line, models_line = status.curl_lines()
    assert predict_line in text and models_line in text
    Path("request.json").write_text(json.dumps({"input": [1, 2, 3, 4]}))
    for line, check in ((predict_line, lambda v: len(v) == 3), (models_line, lambda v: v["models"])):
        done = subprocess.run([*shlex.split(line), "-s", "-H", "Content-Type: application/json"], capture_output=True)
        assert done.returncode == 0, done.stderr
        assert check(json.loads(done.stdout)), done.stdout
    # Without the token the same call is refused, as TorchServe refuses it.
    bare = subprocess.run(["curl", "-s", f"{status.management_address}/models"], capture_output=True, check=True)
    assert json.loads(bare.stdout)["code"] == 400


def test_status_without_tokens_says_so(ip: InteractiveShell) -> None:
    status = ip.run_line_magic("ts_serve", "start --no-token")
    assert status.key_file is None
    assert "token authorization is off: requests need no key" in repr(status)
    assert "Authorization" not in " ".join(status.curl_lines())


def test_describe_set_default_and_metrics(ip: InteractiveShell, tmp_path: Path) -> None:
    ip.run_line_magic("ts_serve", "start --models tiny=tiny.mar")
    ip.run_line_magic("ts_serve", """predict tiny '{"input": [1, 2, 3, 4]}'""")
    described = ip.run_line_magic("ts_serve", "describe tiny")
    assert described[0]["modelName"] == "tiny" and described[0]["modelVersion"] == "1.0"
    store = tmp_path / ".ts_notebook" / "model_store"
    assets = tmp_path / "assets"
    ip.run_line_magic(
        "mar_build",
        f"--model-name tiny -v 2.0 --model-file {assets}/model.py --serialized-file {assets}/tiny_state.pth "
        f"--handler {assets}/handler.py --extra-files {assets}/index_to_name.json --export-path {store} -f",
    )
    ip.run_line_magic("ts_serve", f"register {store}/tiny.mar")
    assert [v["modelVersion"] for v in ip.run_line_magic("ts_serve", "describe tiny all")] == ["1.0", "2.0"]
    assert (
        ip.run_line_magic("ts_serve", "set-default tiny 2.0")
        == 'Default version successfully updated for model "tiny" to "2.0"'
    )
    assert ip.run_line_magic("ts_serve", "describe tiny")[0]["modelVersion"] == "2.0"

    metrics = ip.run_line_magic("ts_serve", "metrics tiny")
    assert isinstance(metrics, MetricsText)
    samples = [ln for ln in repr(metrics).splitlines() if not ln.startswith("#")]
    assert samples and all('model_name="tiny"' in ln or 'ModelName="tiny"' in ln for ln in samples)
    assert repr(ip.run_line_magic("ts_serve", "metrics nobody")) == "no metric samples for model nobody yet"
    assert "ts_inference_requests_total" in repr(ip.run_line_magic("ts_serve", "metrics"))


def test_unload_stops_pollers_and_the_backends_this_kernel_started(ip: InteractiveShell) -> None:
    status = ip.run_line_magic("ts_serve", "start")
    dash = ip.run_line_magic("ts_serve", "dashboard --interval 0.2")
    assert dash.poller.running
    ip.run_line_magic("unload_ext", "ts_notebook")
    assert not dash.poller.running and dash.status == "closed"
    assert not launcher.is_alive(status.pid)
    ip.run_line_magic("load_ext", "ts_notebook")


def test_unload_leaves_detached_backends_running(ip: InteractiveShell) -> None:
    status = ip.run_line_magic("ts_serve", "start --detach")
    ip.run_line_magic("unload_ext", "ts_notebook")
    try:
        assert launcher.is_alive(status.pid)
    finally:
        with contextlib.suppress(Exception):
            info = next(i for i in launcher.running() if i.pid == status.pid)
            assert launcher.stop(info)
        wait_until(lambda: not launcher.is_alive(status.pid), what="the detached backend to stop")
        ip.run_line_magic("load_ext", "ts_notebook")


def test_the_other_magics_print_help_for_h_too(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    assert ip.run_cell_magic("handler", "-h", "x = 1") is None
    assert "--model-dir DIR" in capsys.readouterr().out
    assert not Path(".ts_notebook/handlers/-h.py").exists()
    assert ip.run_line_magic("mar_inspect", "--help") is None
    assert "--export-model OUT" in capsys.readouterr().out
    assert ip.run_line_magic("mar_build", "-h") is None
    assert "--archive-format {default,tgz,no-archive,zip-store}" in capsys.readouterr().out
