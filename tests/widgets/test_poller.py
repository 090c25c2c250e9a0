"""The one-thread rule: a dashboard's method twins run on its poller while it runs."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ts_notebook import launcher
from ts_notebook.archive import build_archive
from ts_notebook.widgets.poller import Poller


def test_call_runs_on_the_poller_thread_and_returns_its_answer() -> None:
    ticks: list[str] = []
    poller = Poller(lambda: ticks.append(threading.current_thread().name), interval=0.05)
    poller.start()
    try:
        assert poller.call(lambda: threading.current_thread().name) == "ts_notebook-dashboard"
        with pytest.raises(ZeroDivisionError):
            poller.call(lambda: 1 / 0)
    finally:
        poller.stop()
    assert set(ticks) == {"ts_notebook-dashboard"}


def test_without_a_running_poller_call_runs_here() -> None:
    poller = Poller(lambda: None)
    assert poller.call(lambda: threading.current_thread()) is threading.current_thread()


def test_an_action_queued_as_the_poller_stops_still_runs_once() -> None:
    poller = Poller(lambda: None, interval=10)
    poller.start()
    runs: list[int] = []
    stopper = threading.Thread(target=poller.stop)
    stopper.start()
    poller.call(lambda: runs.append(1))
    stopper.join()
    assert runs == [1]


def test_dashboard_twins_mutate_widgets_only_on_the_poller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ts_notebook.widgets import ServingDashboard

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    store = tmp_path / "store"
    store.mkdir()
    (tmp_path / "echo.py").write_text("def handle(data, context):\n    return [r.get('body') for r in data or []]\n")
    build_archive("echo", "1.0", str(tmp_path / "echo.py"), export_path=store)
    outcome = launcher.start(launcher.LaunchSpec(store, token_auth=False))
    assert isinstance(outcome, launcher.Started), outcome
    try:
        client = outcome.info.client()
        client.register("echo.mar", initial_workers=1)
        dash = ServingDashboard(client, interval=30)
        shown_on: list[str] = []
        show = dash.try_it.show
        monkeypatch.setattr(
            dash.try_it, "show", lambda *a: (shown_on.append(threading.current_thread().name), show(*a))
        )
        answer = dash.send("echo", "hi", "text/plain")
        assert answer.status == 200 and answer.value == "hi"
        assert shown_on == ["ts_notebook-dashboard"]
        assert dash.scale("echo", 2) == "Workers scaled to 2 for model: echo"
        assert len(dash.models.models[0]["workers"]) == 2
        dash.stop()
        assert dash.send("echo", "again", "text/plain").value == "again"  # no poller: runs here
        assert shown_on[-1] == threading.current_thread().name
    finally:
        launcher.stop(outcome.info)
