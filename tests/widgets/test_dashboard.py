"""The dashboard through its state (traits and method twins) against a real backend subprocess."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.assets import build_tiny, write_assets
from tests.backend.helpers import wait_until
from ts_notebook import launcher
from ts_notebook.archive import build_archive, open_archive
from ts_notebook.client import Client
from ts_notebook.records import ServedRequest
from ts_notebook.widgets import ServingDashboard
from ts_notebook.widgets.figures import FiguresView
from ts_notebook.widgets.poller import Poller

ECHO = (
    "import logging\n\ndef handle(data, context):\n    if data is None:\n        return None\n"
    "    logging.warning('echo saw %r', data[0])\n    return [row.get('body') for row in data]\n"
)


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, Path]]:
    root = tmp_path_factory.mktemp("dash")
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_RUNTIME_DIR", str(root))
    store = root / "store"
    store.mkdir()
    assets = write_assets(root / "assets")
    build_tiny(assets, store)
    (root / "echo.py").write_text(ECHO)
    build_archive("echo", "1.0", str(root / "echo.py"), export_path=store)
    outcome = launcher.start(launcher.LaunchSpec(store))
    assert isinstance(outcome, launcher.Started), outcome
    client = outcome.info.client()
    client.register("tiny.mar", initial_workers=1)
    client.register("echo.mar", initial_workers=1)
    try:
        yield client, store
    finally:
        launcher.stop(outcome.info)
        mp.undo()


def test_dashboard_shows_models_and_every_view_has_its_class(backend: tuple[Client, Path]) -> None:
    client, _ = backend
    dash = ServingDashboard(client, autostart=False)
    classes = {
        c
        for view in (dash, dash.models, dash.requests, dash.logs, dash.try_it, dash.figures, dash.context)
        for c in view._dom_classes
    }
    assert {
        "tsn-dashboard",
        "tsn-models",
        "tsn-request-log",
        "tsn-prediction-log",
        "tsn-try-it",
        "tsn-figures",
        "tsn-context-view",
    } <= classes
    assert sorted(m["modelName"] for m in dash.models.models) == ["echo", "tiny"]
    assert dash.try_it.model.options == ("echo", "tiny")
    assert "tiny 1.0 ready" in repr(dash.models)
    dash.close()


def test_try_it_send_shows_the_answer_and_a_request_row(backend: tuple[Client, Path]) -> None:
    client, _ = backend
    dash = ServingDashboard(client, autostart=False)
    answer = dash.send("tiny", '{"input": [1, 2, 3, 4]}', "application/json")
    assert answer.status == 200
    assert "-0.36975" in dash.try_it.response.value
    row = dash.requests.rows[0]
    assert (row.model, row.status) == ("tiny", 200)
    assert row.shown().data == "{'body': {'input': [1, 2, 3, 4]}}"  # the data row exactly as the handler got it
    assert "tsn-request-row" in dash.requests._body.value
    assert dash.figures.figures["tiny"]["requests"] >= 1
    dash.close()


def test_prediction_log_shows_handler_lines_and_filters(backend: tuple[Client, Path]) -> None:
    client, _ = backend
    dash = ServingDashboard(client, autostart=False)
    dash.send("echo", "hello", "text/plain")
    lines = [e for e in dash.logs.lines if "echo saw" in e.message]
    assert lines and lines[-1].level == "WARNING" and lines[-1].request_id
    dash.filter_logs(model="echo", level="WARNING")
    assert all(e.model == "echo" for e in dash.logs.visible())
    assert "echo saw {&#x27;body&#x27;: &#x27;hello&#x27;}" in dash.logs._body.value
    dash.filter_logs(model="tiny", level="ERROR")
    assert not any("echo saw" in e.message for e in dash.logs.visible())
    dash.close()


def test_actions_scale_context_reload_unregister(backend: tuple[Client, Path]) -> None:
    client, store = backend
    dash = ServingDashboard(client, autostart=False)
    assert dash.scale("echo", 2) == "Workers scaled to 2 for model: echo"
    assert len(next(m for m in dash.models.models if m["modelName"] == "echo")["workers"]) == 2
    workers = dash.show_context("tiny")
    props = workers[0].system_properties
    assert props["batch_size"] == 1 and props["gpu_id"] is None
    # model_dir is the folder the worker really loaded: it holds every file of tiny.mar
    model_dir = Path(str(props["model_dir"]))
    unpacked = {f.relative_to(model_dir).as_posix() for f in model_dir.rglob("*") if f.is_file()}
    assert set(open_archive(store / "tiny.mar").names) <= unpacked, unpacked
    [shown] = [c for c in dash.context.children if "tsn-context" in c._dom_classes]
    assert f"model_dir={props['model_dir']!r}" in repr(shown)
    # Reload picks up a rebuilt archive: both workers move to the new code, the version stays.
    echo_py = store.parent / "echo.py"
    echo_py.write_text(ECHO.replace("row.get('body')", "'v2'"))
    build_archive("echo", "1.0", str(echo_py), export_path=store, force=True)
    answer = dash.reload("echo")
    assert answer.startswith('Model "echo" version 1.0 now serves generation ') and "(2 workers" in answer
    assert client.predict("echo", "hi").value == "v2"
    echo_workers = next(m for m in dash.models.models if m["modelName"] == "echo")["workers"]
    gens = {dash.models.generations()[str(w["id"])] for w in echo_workers}
    assert len(gens) == 1 and "gen " + gens.pop() in dash.models._table.value
    assert dash.unregister("echo") == 'Model "echo" unregistered'
    assert [m["modelName"] for m in dash.models.models] == ["tiny"]
    echo_py.write_text(ECHO)
    build_archive("echo", "1.0", str(echo_py), export_path=store, force=True)
    client.register("echo.mar", initial_workers=1)
    dash.close()


def test_failed_requests_are_marked_and_replay_from_the_log(backend: tuple[Client, Path]) -> None:
    client, _ = backend
    dash = ServingDashboard(client, autostart=False)
    ok = client.predict("tiny", {"input": [1, 2, 3, 4]})
    bad = client.predict("tiny", {"wrong": 1}, check=False)
    assert (ok.status, bad.status) == (200, 503)
    dash.refresh()
    failed = dash.requests.failed_ids()
    assert failed == [bad.headers["x-request-id"]]
    rows = {r.children[1].value: r for r in dash.requests._buttons.children}
    marked = [r for label, r in rows.items() if bad.headers["x-request-id"] in label]
    assert "tsn-failed" in marked[0]._dom_classes
    assert "tsn-stage-bar" in dash.requests._body.value and "tsn-failed" in dash.requests._body.value
    result = dash.replay(failed[0])
    assert not result.ok and result.trace.failure.error_type == "KeyError"
    assert dash.last_replay is result and "KeyError" in dash.replayed.value
    assert "tsn-latency-plot" in dash.figures._body.value
    dash.close()


def test_the_poller_updates_the_dashboard_and_stops_with_it(backend: tuple[Client, Path]) -> None:
    client, _ = backend
    dash = ServingDashboard(client, interval=0.1)
    assert dash.poller.running
    before = len(dash.requests.rows)
    client.predict("tiny", {"input": [1, 2, 3, 4]})  # traffic from elsewhere shows up by itself
    wait_until(lambda: len(dash.requests.rows) > before, 10, "the request in the dashboard's request log")
    assert len(dash.requests.rows) == before + 1
    dash.close()
    assert not dash.poller.running and dash.status == "closed"


def test_dashboard_stops_cleanly_when_the_server_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    (tmp_path / "store").mkdir()
    outcome = launcher.start(launcher.LaunchSpec(tmp_path / "store"))
    assert isinstance(outcome, launcher.Started)
    dash = ServingDashboard(outcome.info.client(), interval=0.1)
    launcher.stop(outcome.info)
    wait_until(lambda: dash.status != "live", 10, "the dashboard to notice the server stopped")
    assert dash.status == "stopped" and "server stopped" in dash.header.value
    wait_until(lambda: not dash.poller.running, 5, "the poller to stop")


def test_actions_from_buttons_run_on_the_poller_thread() -> None:
    import threading

    seen: list[str] = []
    poller = Poller(lambda: None, interval=0.05)
    poller.submit(lambda: seen.append(threading.current_thread().name))  # no poller yet: runs here
    poller.start()
    done = threading.Event()
    poller.submit(lambda: (seen.append(threading.current_thread().name), done.set()))
    assert done.wait(5)
    poller.stop()
    assert seen == [threading.current_thread().name, "ts_notebook-dashboard"]


def _served(model: str, when: float, latency_ms: float, status: int) -> ServedRequest:
    path = f"/predictions/{model}"
    return ServedRequest(f"r{when}", model, "1.0", when, "POST", path, status, latency_ms / 1000, 0.0)


def test_figures_over_the_last_minute() -> None:
    view = FiguresView()
    now = 1000.0
    events = [_served("m", now - 10 + i, float(i), 200 if i < 9 else 503) for i in range(10)]
    events.append(_served("old", now - 120, 1.0, 200))
    view.add(events, now=now)
    assert view.figures == {"m": {"rps": 1.0, "p50_ms": 4.0, "p99_ms": 9.0, "errors": 1, "requests": 10}}
    assert repr(view) == "m: 1.0 req/s p50 4.0 ms p99 9.0 ms errors 1"
