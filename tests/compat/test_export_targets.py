"""Each export proven by starting its real target here: TorchServe 0.12.0 with exactly the written
config.properties and model store, KServe's requests answered by TorchServe with the runtime's envelope
and by the generated kserve.Model in kserve's own model server, and the Ray Serve app on a local Ray;
each answers as the embedded backend does."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.assets import build_tiny
from tests.compat.embedded import EmbeddedBackend, http
from ts_notebook.deploy.export import export
from ts_notebook.deploy.source import from_archive
from ts_notebook.deploy.to_kserve import KServeOptions
from ts_notebook.deploy.to_ray import RayOptions
from ts_notebook.deploy.to_torchserve import TorchServeOptions
from ts_notebook.deploy.torchserve import TorchServe, _descendants, _free_ports
from ts_notebook.properties import read_properties

PAYLOADS = (b'{"input": [1, 2, 3, 4]}', b'{"input": [0, 0, 0, 1]}', b'{"no input": 1}')
DESCRIBED = ("minWorkers", "maxWorkers", "batchSize", "maxBatchDelay", "responseTimeout")

# A handler for KServe's shapes: v1 instances ({"data": {"input": [...]}}) and v2 inputs ({"data": [[...]]}),
# and for the batch test, the size of the batch it got.
KSERVE_HANDLER = """
import torch
from model import TinyNet

NET = None


def handle(data, context):
    global NET
    if NET is None:
        NET = TinyNet()
        NET.load_state_dict(torch.load(context.system_properties["model_dir"] + "/tiny_state.pth"))
        NET.eval()
    if data is None:
        return None
    out = []
    for row in data:
        x = row.get("data", row.get("body")) if isinstance(row, dict) else row
        if isinstance(x, (bytes, bytearray)):
            import json
            x = json.loads(x)
        if isinstance(x, dict):
            x = x["input"]
        with torch.no_grad():
            y = NET(torch.tensor(x, dtype=torch.float32).reshape(-1, 4))
        out.append({"logits": [[round(v, 5) for v in r] for r in y.tolist()], "batch": len(data)})
    return out
"""


def free_loopback_ports(count: int) -> list[int]:
    return _free_ports(count)


def embedded_answers(root: Path, archive: Path, query: str, payloads: tuple[bytes, ...]) -> list[tuple[int, Any]]:
    ours = EmbeddedBackend(root, "--disable-token-auth", "--enable-model-api")
    try:
        status, body, _ = http("POST", f"{ours.management_url}/models?url={archive}&{query}&synchronous=true")
        assert status == 200, body
        return [decode(http("POST", f"{ours.inference_url}/predictions/tiny", p)) for p in payloads]
    finally:
        ours.stop()


def decode(answer: tuple[int, bytes, dict[str, str]]) -> tuple[int, Any]:
    status, body, _ = answer
    return status, json.loads(body)


def test_torchserve_export_starts_in_real_torchserve_as_written(
    ts_ref_venv: Path, model_assets: Path, tmp_path: Path
) -> None:
    archive = build_tiny(model_assets, tmp_path / "built", config_file=str(model_assets / "model-config.yaml")).path
    source = from_archive(archive).with_settings(minWorkers=2, maxWorkers=2, batchSize=2, maxBatchDelay=50)
    ports = free_loopback_ports(5)
    opts = TorchServeOptions("127.0.0.1", *ports)  # loopback here; the default is 0.0.0.0 for a container
    report = export(source, "torchserve", tmp_path / "ship")
    assert read_properties(report.folder / "config" / "config.properties")["inference_address"].startswith(
        "http://0.0.0.0:"
    )
    report = export(source, "torchserve", tmp_path / "ship", torchserve=opts, force=True)
    config = report.folder / "config" / "config.properties"
    written = config.read_bytes()
    ts = TorchServe(ts_ref_venv, config_file=config, model_store=report.folder / "model-store", startup_timeout=120)
    with ts:
        keys = ts.keys()
        assert keys, "token authorization is on in the export: TorchServe wrote key_file.json"
        auth = {"Authorization": f"Bearer {keys['inference']}"}
        theirs = [decode(http("POST", f"{ts.inference_url}/predictions/tiny", p, auth)) for p in PAYLOADS]
        manage = {"Authorization": f"Bearer {keys['management']}"}
        _, body, _ = http("GET", f"{ts.management_url}/models/tiny", headers=manage)
        described = json.loads(body)[0]
        refused, _, _ = http("POST", f"{ts.management_url}/models?url=tiny.mar", headers=manage)
    assert config.read_bytes() == written  # started with exactly the file the export wrote
    assert {k: described[k] for k in DESCRIBED} == {k: source.settings[k] for k in DESCRIBED}
    assert refused == 405  # the model API is off, as the export's safe default says
    query = "model_name=tiny&initial_workers=2&batch_size=2&max_batch_delay=50&response_timeout=30"
    assert theirs == embedded_answers(tmp_path / "ours", archive, query, PAYLOADS)
    assert theirs[0] == (200, [-0.36975, -0.10713, 0.09059]) and theirs[2][0] == 503


@contextlib.contextmanager
def running(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A server process and everything it starts, stopped (SIGINT, then SIGKILL) at the end."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        family = [proc.pid, *_descendants(proc.pid)]
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(45)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for pid in family[1:]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def wait_for(url: str, body: bytes | None, log: Path, timeout: float = 150.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if http("POST" if body else "GET", url, body, {"Content-Type": "application/json"}, timeout=5)[0] == 200:
                return
        time.sleep(0.5)
    raise AssertionError(f"{url} never answered 200\n{log.read_text(errors='replace')[-4000:]}")


def kserve_archive(model_assets: Path, tmp_path: Path) -> Path:
    handler = tmp_path / "src" / "kserve_handler.py"
    handler.parent.mkdir(parents=True)
    handler.write_text(KSERVE_HANDLER)
    return build_tiny(
        model_assets, tmp_path / "built", handler=handler, extra_files=str(model_assets / "tiny_state.pth")
    ).path


V1 = json.dumps({"instances": [{"data": {"input": [1, 2, 3, 4]}}, {"data": {"input": [0, 0, 0, 1]}}]}).encode()
V2 = json.dumps(
    {"id": "r1", "inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3, 4, 0, 0, 0, 1]}]}
).encode()


def without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def torchserve_runtime_answer(ts_ref_venv: Path, folder: Path, route: str, body: bytes) -> tuple[int, Any]:
    """KServe's TorchServe runtime: the written config, with only its fixed 0.0.0.0 ports moved to loopback."""
    runtime = folder / "torchserve-runtime"
    props = read_properties(runtime / "config" / "config.properties")
    p = free_loopback_ports(5)
    props |= {f"{name}_address": f"http://127.0.0.1:{port}" for name, port in zip(
        ("inference", "management", "metrics"), p, strict=False)}  # fmt: skip
    props |= {"grpc_inference_address": "127.0.0.1", "grpc_inference_port": str(p[3]),
              "grpc_management_address": "127.0.0.1", "grpc_management_port": str(p[4])}  # fmt: skip
    config = folder / "loopback.properties"
    config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    with TorchServe(ts_ref_venv, config_file=config, model_store=runtime / "model-store", startup_timeout=120) as ts:
        wait_for(f"{ts.inference_url}{route}", body, ts.root / "logs" / "model_log.log", 60)
        return decode(http("POST", f"{ts.inference_url}{route}", body, {"Content-Type": "application/json"}))


def python_server_answer(kserve_venv: Path, folder: Path, protocol: str, route: str, body: bytes) -> tuple[int, Any]:
    port = free_loopback_ports(1)[0]
    server = folder / "python-server"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")} | {"HF_HUB_OFFLINE": "1"}
    argv = [str(kserve_venv / "bin" / "python"), "model.py", "--http_port", str(port), "--enable_grpc", "false",
            "--protocol", protocol]  # fmt: skip
    log = folder / "kserve.log"
    # kserve's own server binds 0.0.0.0 by its design; the test sends its requests to 127.0.0.1 only.
    with running(argv, server, env, log):
        url = f"http://127.0.0.1:{port}{route}"
        wait_for(url, body, log, 120)
        return decode(http("POST", url, body, {"Content-Type": "application/json"}))


@pytest.mark.parametrize(("protocol", "route", "body"), [
    ("v1", "/v1/models/tiny:predict", V1), ("v2", "/v2/models/tiny/infer", V2)])  # fmt: skip
def test_kserve_requests_are_answered_alike_by_both_server_paths(
    ts_ref_venv: Path, kserve_venv: Path, model_assets: Path, tmp_path: Path, protocol: str, route: str, body: bytes
) -> None:
    archive = kserve_archive(model_assets, tmp_path)
    report = export(from_archive(archive), "kserve", tmp_path / "ship", kserve=KServeOptions(protocol))
    runtime = torchserve_runtime_answer(ts_ref_venv, report.folder, route, body)
    python = python_server_answer(kserve_venv, report.folder, protocol, route, body)
    assert runtime[0] == 200, runtime
    assert python[0] == 200 and without_nulls(python[1]) == without_nulls(runtime[1])  # kserve adds nulls
    if protocol == "v1":
        assert runtime[1]["predictions"][0]["logits"] == [[-0.36975, -0.10713, 0.09059]]
    else:
        assert runtime[1]["id"] == "r1" and runtime[1]["outputs"][0]["name"] == "input-0"


def test_ray_serve_app_answers_as_the_embedded_backend_including_a_batch(
    ray_venv: Path, model_assets: Path, tmp_path: Path
) -> None:
    archive = kserve_archive(model_assets, tmp_path)
    source = from_archive(archive).with_settings(batchSize=4, maxBatchDelay=2000)
    port = free_loopback_ports(1)[0]
    report = export(source, "ray", tmp_path / "ship", ray=RayOptions(host="127.0.0.1", port=port))
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")} | {
        "RAY_USAGE_STATS_ENABLED": "0", "RAY_TMPDIR": ray_tmp, "HF_HUB_OFFLINE": "1",
        "PATH": f"{ray_venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
    }  # fmt: skip
    log = tmp_path / "ray.log"
    url = f"http://127.0.0.1:{port}/predictions/tiny"
    bodies = [json.dumps({"input": [i, 1, 2, 3]}).encode() for i in range(4)]
    try:
        with running([str(ray_venv / "bin" / "serve"), "run", "serve_config.yaml"], report.folder, env, log):
            wait_for(url, PAYLOADS[0], log)
            single = decode(http("POST", url, PAYLOADS[0]))
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                batch = list(pool.map(lambda b: decode(http("POST", url, b)), bodies))
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    query = "model_name=tiny&batch_size=4&max_batch_delay=2000&initial_workers=1"
    ours_single = embedded_answers(tmp_path / "ours1", archive, query.replace("4", "1", 1), (PAYLOADS[0],))
    ours = EmbeddedBackend(tmp_path / "ours", "--disable-token-auth", "--enable-model-api")
    try:
        status, _, _ = http("POST", f"{ours.management_url}/models?url={archive}&{query}&synchronous=true")
        assert status == 200
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            ours_batch = list(pool.map(lambda b: decode(http("POST", f"{ours.inference_url}/predictions/tiny", b)),
                                       bodies))  # fmt: skip
    finally:
        ours.stop()
    assert single == ours_single[0] and single[0] == 200
    assert batch == ours_batch
    assert {answer["batch"] for _, answer in batch} == {4}  # all four went through the handler as one batch
