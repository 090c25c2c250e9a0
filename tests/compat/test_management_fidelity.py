"""Management API behaviours, each as TorchServe 0.12.0 has them: the same requests to real TorchServe
and to our backend (started with the same default_workers_per_model), answers compared."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ts_notebook.archive import build_archive
from ts_notebook.deploy.torchserve import TorchServe

from .embedded import EmbeddedBackend, http

pytestmark = pytest.mark.compat

ECHO = "def handle(data, context):\n    return [1 for _ in data] if data else None\n"
OOM = (
    "class Oom:\n    def initialize(self, context):\n        if context.model_name == 'oominit':\n"
    "            raise MemoryError('no room')\n\n    def handle(self, data, context):\n"
    "        raise MemoryError('no room for the batch')\n"
)
DESCRIBED = (
    "from ts.torch_handler.base_handler import BaseHandler\n\n\nclass Described(BaseHandler):\n"
    "    def initialize(self, context):\n        self.context = context\n        self.initialized = True\n\n"
    "    def describe_handle(self):\n        return {'labels': ['cat', 'dog'], 'size': 2}\n"
)
BADINIT = (
    "class Bad:\n    def initialize(self, context):\n        raise RuntimeError('boom')\n\n"
    "    def handle(self, data, context):\n        return data\n"
)


@pytest.fixture(scope="module")
def servers(ts_ref_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[str, str]]]:
    """(inference, management) URLs of a TorchServe and of ours, both with default_workers_per_model=1
    and the same archives in their stores (echo, badinit, oom)."""
    folder = tmp_path_factory.mktemp("fidelity-src")
    archives = []
    for name, code in (("echo", ECHO), ("badinit", BADINIT), ("oom", OOM), ("described", DESCRIBED)):
        (folder / f"{name}.py").write_text(code)
        archives.append(build_archive(name, "1.0", str(folder / f"{name}.py"), export_path=folder).path)
    for version in ("2.0", "10.0"):  # the same model at other versions, as echo_2.0.mar and echo_10.0.mar
        (folder / version).mkdir()
        built = build_archive("echo", version, str(folder / "echo.py"), export_path=folder / version).path
        archives.append(built.rename(folder / f"echo_{version}.mar"))
    ts = TorchServe(ts_ref_venv, config={"default_workers_per_model": "1"}, startup_timeout=120)
    root = tmp_path_factory.mktemp("fidelity-ours")
    (root / "store").mkdir()
    for archive in archives:
        ts.store.mkdir(parents=True, exist_ok=True)
        shutil.copy(archive, ts.store / archive.name)
        shutil.copy(archive, root / "store" / archive.name)
    ours = EmbeddedBackend(
        root, "--disable-token-auth", "--enable-model-api", properties={"default_workers_per_model": "1"}
    )
    try:
        ts.start()
        yield {"ts": (ts.inference_url, ts.management_url), "ours": (ours.inference_url, ours.management_url)}
    finally:
        ts.stop()
        ours.stop()


@pytest.fixture(scope="module")
def pair(servers: dict[str, tuple[str, str]]) -> dict[str, str]:
    """The management URLs."""
    return {name: urls[1] for name, urls in servers.items()}


def _both(pair: dict[str, str], method: str, path: str, body: bytes | None = None, ctype: str = "") -> dict[str, Any]:
    out = {}
    for name, base in pair.items():
        status, raw, _ = http(method, f"{base}{path}", body, {"Content-Type": ctype} if ctype else {})
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        if isinstance(value, list):
            value = [{k: v for k, v in e.items() if k not in ("workers", "modelUrl")} for e in value]
        out[name] = (status, value)
    return out


def _agree(pair: dict[str, str], method: str, path: str, body: bytes | None = None, ctype: str = "") -> Any:
    answers = _both(pair, method, path, body, ctype)
    assert answers["ours"] == answers["ts"], json.dumps(answers)[:3000]
    return answers["ts"]


def _workers(pair: dict[str, str], name: str) -> dict[str, int]:
    out = {}
    for server, base in pair.items():
        status, raw, _ = http("GET", f"{base}/models/{name}")
        out[server] = len(json.loads(raw)[0]["workers"]) if status == 200 else -1
    return out


def test_a_failed_registration_is_answered_and_listed_as_in_torchserve(pair: dict[str, str]) -> None:
    answers = _both(pair, "POST", "/models?url=badinit.mar&initial_workers=1&synchronous=true")
    assert answers["ours"][0] == answers["ts"][0] == 500
    # Observed on TorchServe 0.12.0: the model stays registered (its workers keep retrying), so a
    # fixed archive needs an unregister first. Ours does the same, and says why in the 500.
    # TorchServe's own clean-up (it unregisters on the failed start) races those retries: on a
    # loaded machine it sometimes wins and the model is gone. Ours keeps the first outcome always.
    ts_status, _, _ = http("GET", f"{pair['ts']}/models/badinit")
    if ts_status == 404:
        status, raw, _ = http("GET", f"{pair['ours']}/models/badinit")
        assert status == 200 and json.loads(raw)[0]["minWorkers"] == 0
        assert http("DELETE", f"{pair['ours']}/models/badinit")[0] == 200
        return
    _agree(pair, "GET", "/models/badinit")
    _agree(pair, "GET", "/models")
    _agree(pair, "DELETE", "/models/badinit")


def test_registration_without_initial_workers_uses_default_workers_per_model(pair: dict[str, str]) -> None:
    _agree(pair, "POST", "/models?url=echo.mar&model_name=defaults&synchronous=true")
    assert _workers(pair, "defaults") == {"ts": 1, "ours": 1}
    _agree(pair, "DELETE", "/models/defaults")


def test_registration_with_a_json_body(pair: dict[str, str]) -> None:
    body = json.dumps({"url": "echo.mar", "model_name": "jsonbody", "initial_workers": 1, "synchronous": True})
    _agree(pair, "POST", "/models", body.encode(), "application/json")
    assert _workers(pair, "jsonbody") == {"ts": 1, "ours": 1}
    _agree(pair, "DELETE", "/models/jsonbody")


@pytest.mark.parametrize("url", ["../echo.mar", "sub/../echo.mar"])
def test_relative_paths_are_refused(pair: dict[str, str], url: str) -> None:
    status, body = _agree(pair, "POST", f"/models?url={url}&model_name=rel")
    assert status == 404 and body["message"] == f"Relative path is not allowed in url: {url}"


@pytest.mark.parametrize("query", ["min_worker=2&max_worker=1", "min_worker=abc", "max_worker=-3", "max_worker=x"])
def test_bad_scale_requests(pair: dict[str, str], query: str) -> None:
    _agree(pair, "POST", "/models?url=echo.mar&model_name=scaleme&initial_workers=1&synchronous=true")
    try:
        _agree(pair, "PUT", f"/models/scaleme?{query}&synchronous=true")
        assert _workers(pair, "scaleme") == {"ts": 1, "ours": 1}
    finally:
        _agree(pair, "DELETE", "/models/scaleme")


def test_a_negative_worker_count_is_a_400_not_torchserves_crash(pair: dict[str, str]) -> None:
    _agree(pair, "POST", "/models?url=echo.mar&model_name=negative&initial_workers=1&synchronous=true")
    try:
        answers = _both(pair, "PUT", "/models/negative?min_worker=-1&synchronous=true")
        assert answers["ts"] == (500, {"code": 500, "type": "IndexOutOfBoundsException",
                                       "message": "Index -1 out of bounds for length 0"})  # fmt: skip
        assert answers["ours"] == (400, {"code": 400, "type": "BadRequestException",
                                         "message": "min_worker cannot be negative, got -1."})  # fmt: skip
        assert _workers(pair, "negative")["ours"] == 1
    finally:
        _agree(pair, "DELETE", "/models/negative")


def test_scale_status_names_the_version(pair: dict[str, str]) -> None:
    _agree(pair, "POST", "/models?url=echo.mar&model_name=versioned&initial_workers=1&synchronous=true")
    try:
        _agree(pair, "PUT", "/models/versioned/1.0?min_worker=1&synchronous=true")
    finally:
        _agree(pair, "DELETE", "/models/versioned")


@pytest.mark.parametrize("query", ["limit=abc", "limit=-1", "next_page_token=abc", "limit=0"])
def test_listing_with_bad_paging_parameters(pair: dict[str, str], query: str) -> None:
    _agree(pair, "GET", f"/models?{query}")


def test_the_servers_json_answers_say_application_json_exactly(pair: dict[str, str]) -> None:
    types = {name: http("GET", f"{base}/models")[2].get("content-type") for name, base in pair.items()}
    assert types["ours"] == types["ts"] == "application/json"


@pytest.mark.parametrize("name", ["bad name!", "-dash", "ok.name_1-x"])
def test_model_names_on_registration(pair: dict[str, str], name: str) -> None:
    from urllib.parse import quote

    answers = _both(pair, "POST", f"/models?url=echo.mar&model_name={quote(name)}&initial_workers=0")
    try:
        assert answers["ours"] == answers["ts"], answers
    finally:
        for base in pair.values():
            http("DELETE", f"{base}/models/{quote(name)}")


def test_out_of_memory_in_initialize_and_in_handle(servers: dict[str, tuple[str, str]], pair: dict[str, str]) -> None:
    register = _both(pair, "POST", "/models?url=oom.mar&model_name=oominit&initial_workers=1&synchronous=true")
    _both(pair, "DELETE", "/models/oominit")
    assert register["ours"][0] == register["ts"][0], register
    _agree(pair, "POST", "/models?url=oom.mar&model_name=oom&initial_workers=1&synchronous=true")
    try:
        answers = {n: http("POST", f"{inf}/predictions/oom", b"{}")[:2] for n, (inf, _) in servers.items()}
        assert answers["ours"] == answers["ts"], answers
    finally:
        _agree(pair, "DELETE", "/models/oom")


def test_describe_with_customized_metadata(pair: dict[str, str]) -> None:
    _agree(pair, "POST", "/models?url=described.mar&initial_workers=1&synchronous=true")
    try:
        status, body = _agree(pair, "GET", "/models/described?customized=true")
        assert status == 200 and body[0]["customizedMetadata"] == {"labels": ["cat", "dog"], "size": 2}
        _agree(pair, "GET", "/models/described?customized=false")
    finally:
        _agree(pair, "DELETE", "/models/described")


def test_describe_all_lists_versions_in_torchserves_order(pair: dict[str, str]) -> None:
    for url in ("echo_10.0.mar", "echo.mar", "echo_2.0.mar"):
        _agree(pair, "POST", f"/models?url={url}&model_name=multi&initial_workers=0")
    try:
        status, body = _agree(pair, "GET", "/models/multi/all")
        assert status == 200 and len(body) == 3
        _agree(pair, "GET", "/models/multi")  # the default version
    finally:
        for version in ("1.0", "2.0"):
            _both(pair, "DELETE", f"/models/multi/{version}")
        _both(pair, "DELETE", "/models/multi")
