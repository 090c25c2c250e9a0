"""How a registration's ``url`` finds a model in the store, side by side with TorchServe 0.12.0: no-archive
folders (named as their manifest says, or wrapped in a folder of their own), paths with a folder part,
absolute paths, and a manifest without a model name."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ts_notebook.archive import build_archive

from .embedded import http, side_by_side

pytestmark = pytest.mark.compat

HANDLER = "def handle(data, context):\n    return [context.model_name for _ in data] if data else None\n"
URLS = [
    "foo",  # a no-archive folder
    "bar",  # the same folder under another name: the manifest names the model
    "unnamed",  # a manifest without modelName
    "unnamed&model_name=given",
    "wrapped",  # a folder holding the model folder (wrapped/wrapped)
    "outer",  # a folder holding a model folder of another name (outer/inner)
    "wrapped/wrapped",
    "outer/inner",
    "ABSOLUTE/foo.mar",
    "foo.mar",
]


def _fill(store: Path, folder: Path, mar: Path) -> None:
    for name in ("foo", "bar", "unnamed"):
        shutil.copytree(folder, store / name)
    manifest = store / "unnamed" / "MAR-INF" / "MANIFEST.json"
    data = json.loads(manifest.read_text())
    del data["model"]["modelName"]
    manifest.write_text(json.dumps(data))
    shutil.copytree(folder, store / "wrapped" / "wrapped")
    shutil.copytree(folder, store / "outer" / "inner")
    shutil.copy(mar, store / "foo.mar")


@pytest.fixture(scope="module")
def servers(ts_ref_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[str, str]]]:
    src = tmp_path_factory.mktemp("store-src")
    (src / "h.py").write_text(HANDLER)
    folder = build_archive("foo", "1.0", str(src / "h.py"), export_path=src, archive_format="no-archive").path
    (src / "mar").mkdir()
    mar = build_archive("foo", "1.0", str(src / "h.py"), export_path=src / "mar").path
    layout = src / "store"
    layout.mkdir()
    _fill(layout, folder, mar)
    entries = sorted(layout.iterdir())
    with side_by_side(ts_ref_venv, tmp_path_factory.mktemp("store-ours"), entries) as (ts, ours):
        yield {"ts": (ts.inference_url, ts.management_url), "ours": (ours.inference_url, ours.management_url)}


def _register(inference: str, management: str, url: str, absolute: Path) -> tuple[Any, ...]:
    url = url.replace("ABSOLUTE", str(absolute))
    status, body, _ = http("POST", f"{management}/models?url={url}&initial_workers=1&synchronous=true")
    answer = json.loads(body)
    text = str(answer.get("status") or answer.get("message")).replace(str(absolute), "ABSOLUTE")
    models = [m["modelName"] for m in json.loads(http("GET", f"{management}/models")[1])["models"]]
    json_type = {"Content-Type": "application/json"}
    served = [http("POST", f"{inference}/predictions/{m}", b"{}", json_type)[:2] for m in models]
    for m in models:
        http("DELETE", f"{management}/models/{m}")
    return status, answer.get("type"), text, models, served


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder outside both stores holding foo.mar, for registrations by absolute path."""
    src = tmp_path_factory.mktemp("outside")
    (src / "h.py").write_text(HANDLER)
    build_archive("foo", "1.0", str(src / "h.py"), export_path=src)
    return src


@pytest.mark.parametrize("url", URLS)
def test_registration_finds_the_model_as_torchserve(
    servers: dict[str, tuple[str, str]], url: str, outside: Path
) -> None:
    answers = {server: _register(inf, mgmt, url, outside) for server, (inf, mgmt) in servers.items()}
    assert answers["ours"] == answers["ts"]
