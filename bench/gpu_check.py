"""The GPU checks, kept ready for a machine with CUDA (most runs here have none): one short script.

1. ``gpu_id`` round-robin: our backend with 4 workers of the tiny model gives them devices 0,1,0,1 on
   two GPUs (0,0,0,0 on one), as TorchServe does; ``deviceType: cpu`` in model-config.yaml gives None.
2. BaseHandler's CUDA path: each worker's model really sits on ``cuda:<its gpu_id>`` (the handler
   answers the device of its weights).
3. BERT-sized throughput on the GPU, ours against TorchServe 0.12.0, 2 workers, 16 clients (wrk).

``python bench/gpu_check.py`` with a CUDA torch in the running venv; TorchServe's part needs
``TS_REF_VENV`` (skipped, and said, without it). Writes ``results/gpu.json`` (or ``$OUT/gpu.json``).
Exit 0 when every check ran and passed, 1 when one failed, 2 when there is no GPU.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import common
from floor_phases import measure
from inputs import make_archive
from loadgen import call
from model_code import BERT_BODY, TINY_BODY
from servers import OurServer, RefServer, register, stage, unregister

DEVICE_HANDLER = '''"""The tiny handler, answering the device its weights are on."""
from tiny_handler import TinyHandler


class DeviceHandler(TinyHandler):
    def postprocess(self, data):
        device = str(next(self.model.parameters()).device)
        return [{"device": device, "out": row} for row in data.tolist()]
'''


def _device_archive(folder: Path) -> Path:
    """The tiny archive's files plus a handler that says where the model runs."""
    from ts_notebook.archive import build_archive

    tiny = make_archive("tiny").parent.parent
    (folder / "device_handler.py").write_text(DEVICE_HANDLER)
    build_archive(
        "device", "1.0", str(folder / "device_handler.py"), export_path=folder, force=True,
        model_file=str(tiny / "tiny_model.py"), serialized_file=str(tiny / "tiny_state.pth"),
        extra_files=[str(tiny / "tiny_handler.py")],
    )  # fmt: skip
    return folder / "device.mar"


def check_round_robin(gpus: int, out: dict[str, Any]) -> bool:
    server = OurServer({})
    try:
        server.start()
        url = stage(server, _device_archive(server.root))
        status, text = register(server, url, "device", 4)
        assert status == 200, text
        view = json.loads(call("GET", f"{server.management_url}/ts_notebook/workers")[1])
        ids = [w["gpu_id"] for m in view for w in m["workers"]]
        devices = sorted({json.loads(call("POST", f"{server.inference_url}/predictions/device", TINY_BODY)[1])[
            "device"] for _ in range(16)})  # fmt: skip
        unregister(server, "device")
    finally:
        server.stop()
    expected = [i % gpus for i in range(4)]
    out["gpu_ids"], out["devices_answered"] = ids, devices
    ok_ids = sorted(ids) == sorted(expected)
    ok_devices = devices == sorted({f"cuda:{g}" for g in expected})
    out["round_robin"] = "PASS" if ok_ids else "FAIL"
    out["cuda_path"] = "PASS" if ok_devices else "FAIL"
    return ok_ids and ok_devices


def bert_on_gpu(out: dict[str, Any]) -> None:
    bert = make_archive("bert")
    servers: list[Any] = [OurServer({})]
    ref = os.environ.get("TS_REF_VENV")
    if ref:
        from overlay import make_overlay

        overlay, _ = make_overlay(Path(ref))
        servers.append(RefServer(Path(ref), {}, overlay))
    else:
        out["torchserve"] = "skipped: TS_REF_VENV not set"
    for server in servers:
        try:
            server.start()
            status, text = register(server, stage(server, bert), "bert", 2)
            assert status == 200, text
            cell = measure(server, "/predictions/bert", BERT_BODY, 16, 10.0, 3, "wrk")
            out.setdefault("bert_2w_16c", {})[server.kind] = {k: cell[k] for k in ("rps", "p50_ms", "p99_ms")}
        finally:
            server.stop()


def main() -> int:
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    out: dict[str, Any] = {"gpus": gpus, "torch": torch.__version__}
    if gpus == 0:
        print("no CUDA device: nothing to check here")
        return 2
    ok = check_round_robin(gpus, out)
    bert_on_gpu(out)
    target = Path(os.environ["OUT"]) if os.environ.get("OUT") else common.RESULTS
    target.mkdir(parents=True, exist_ok=True)
    (target / "gpu.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
