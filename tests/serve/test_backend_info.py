"""The backend's record: one schema, written by the server, read by the launcher."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from ts_notebook.backend.info import INFO_FILE, BackendInfo
from ts_notebook.errors import BackendError


def _info(run_dir: Path) -> BackendInfo:
    return BackendInfo(
        pid=1234,
        run_dir=run_dir,
        inference_address="http://127.0.0.1:1",
        management_address="http://127.0.0.1:2",
        metrics_address="http://127.0.0.1:3",
        key_file=run_dir / "key_file.json",
        model_store="/models",
        started=1.5,
        version="0.1.0",
        failed_models={"foo=missing.mar": "no such archive"},
    )


def test_a_record_round_trips_and_is_private(tmp_path: Path) -> None:
    info = _info(tmp_path)
    path = info.write()
    assert path == tmp_path / INFO_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert BackendInfo.read(tmp_path) == info
    assert not list(tmp_path.glob(".*partial"))
    info.remove()
    assert BackendInfo.read(tmp_path) is None


def test_unknown_keys_are_ignored(tmp_path: Path) -> None:
    data = json.loads(_info(tmp_path).to_json()) | {"from_a_newer_version": [1, 2]}
    assert BackendInfo.from_json(json.dumps(data), tmp_path) == _info(tmp_path)


def test_missing_keys_are_named(tmp_path: Path) -> None:
    data = json.loads(_info(tmp_path).to_json())
    del data["management_address"], data["pid"]
    with pytest.raises(BackendError) as err:
        BackendInfo.from_json(json.dumps(data), tmp_path)
    assert str(err.value) == (
        f"{tmp_path / INFO_FILE} lacks pid, management_address: it was written by another version of "
        "ts_notebook or damaged; stop that backend and start again"
    )


def test_a_damaged_record_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / INFO_FILE).write_text("{not json")
    with pytest.raises(BackendError, match="not JSON .*delete it and start again"):
        BackendInfo.read(tmp_path)


def test_keys_come_from_the_key_file(tmp_path: Path) -> None:
    info = _info(tmp_path)
    assert info.keys() == {"inference": None, "management": None}
    (tmp_path / "key_file.json").write_text(json.dumps({"inference": {"key": "i1"}, "management": {"key": "m1"}}))
    assert info.keys() == {"inference": "i1", "management": "m1"}
    client = info.client()
    assert (client.inference_key, client.management_key) == ("i1", "m1")
