"""Export for KServe, both ways a cluster serves a TorchServe handler:

- ``torchserve-runtime/``: the storage layout KServe's TorchServe runtime reads (``config/`` and
  ``model-store/`` under the storageUri) and ``inferenceservice-torchserve.yaml`` with
  ``modelFormat: pytorch``. That runtime takes model names only from ``model_snapshot``, checks
  readiness through the management API (so tokens must be off there) and sets ``service_envelope``
  from the protocol (v1: kserve, v2: kservev2), whose envelopes answer one request per batch:
  ``batchSize`` must be 1, and KServe's own batcher takes over batching.
- ``python-server/``: a generated ``kserve.Model`` running the handler unchanged in our runtime, for
  clusters that no longer ship the TorchServe runtime, with a Dockerfile and
  ``inferenceservice-python.yaml``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from ts_notebook.deploy import to_torchserve as ts
from ts_notebook.deploy.report import Choice
from ts_notebook.deploy.source import ModelSource
from ts_notebook.deploy.vendor import copy_runtime, requirements

ENVELOPE = {"v1": "kserve", "v2": "kservev2"}
MOUNT = "/mnt/models"  # where KServe's storage initializer puts the storageUri's contents


@dataclass(frozen=True)
class KServeOptions:
    protocol: str = "v1"  # "v1" or "v2"
    storage_uri: str = ""  # where the user uploads torchserve-runtime/ (default: a placeholder to edit)
    image: str = ""  # the python-server image to build and push (default: NAME-kserve:latest)
    port: int = 8085  # the TorchServe runtime serves inference and management on this one port


def service_name(model: str) -> str:
    """An InferenceService name (a DNS label: lowercase letters, digits, '-')."""
    return re.sub(r"[^a-z0-9-]+", "-", model.lower()).strip("-")[:63] or "model"


def runtime_properties(source: ModelSource, mar: str, opts: KServeOptions) -> dict[str, str]:
    """config.properties as KServe's TorchServe runtime expects it."""
    return {
        "inference_address": f"http://0.0.0.0:{opts.port}",
        "management_address": f"http://0.0.0.0:{opts.port}",
        "metrics_address": "http://0.0.0.0:8082",
        "grpc_inference_port": "7070",
        "grpc_management_port": "7071",
        "enable_envvars_config": "true",
        "install_py_dep_per_model": "true",
        "model_store": f"{MOUNT}/model-store",
        "model_snapshot": ts.snapshot(source, mar),
        "service_envelope": ENVELOPE[opts.protocol],
        "disable_token_authorization": "true",
        "enable_model_api": "true",
        "metrics_mode": "prometheus",
    }


def inference_service(source: ModelSource, opts: KServeOptions, batch: tuple[int, int] | None) -> dict[str, object]:
    uri = opts.storage_uri or f"pvc://model-pvc/{source.name}/torchserve-runtime"
    model: dict[str, object] = {"modelFormat": {"name": "pytorch"}, "protocolVersion": opts.protocol, "storageUri": uri}
    if source.device == "gpu":
        model["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    predictor: dict[str, object] = {"model": model}
    if batch is not None:
        predictor["batcher"] = {"maxBatchSize": batch[0], "maxLatency": batch[1]}
    return _service(source, predictor)


def python_service(source: ModelSource, opts: KServeOptions) -> dict[str, object]:
    container: dict[str, object] = {
        "name": "kserve-container",
        "image": opts.image or f"{service_name(source.name)}-kserve:latest",
        "args": ["--model_name", source.name, "--protocol", opts.protocol],
    }
    if source.device == "gpu":
        container["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    return _service(source, {"containers": [container]})


def _service(source: ModelSource, predictor: dict[str, object]) -> dict[str, object]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": service_name(source.name)},
        "spec": {"predictor": predictor},
    }


def write(source: ModelSource, folder: Path, opts: KServeOptions) -> tuple[list[Choice], list[str], list[str]]:
    """Write both layouts into ``folder``; returns (choices, warnings, commands)."""
    if opts.protocol not in ENVELOPE:
        from ts_notebook.deploy.source import ExportError

        raise ExportError(f"--protocol {opts.protocol!r}: KServe speaks v1 or v2")
    choices, warnings = _batch_rule(source)
    size, delay = source.settings["batchSize"], source.settings["maxBatchDelay"]
    batch = (size, delay) if size > 1 else None
    served = source.with_settings(batchSize=1)
    runtime = folder / "torchserve-runtime"
    mar = ts.copy_archive(served, runtime / "model-store")
    ts.write_properties(runtime / "config" / "config.properties", runtime_properties(served, mar, opts))
    _dump(folder / "inferenceservice-torchserve.yaml", inference_service(served, opts, batch))
    _python_server(served, folder / "python-server", opts)
    _dump(folder / "inferenceservice-python.yaml", python_service(served, opts))
    choices += ts.setting_choices(served)
    choices += [
        Choice("protocol", opts.protocol, f"service_envelope={ENVELOPE[opts.protocol]}, as KServe's runtime sets it"),
        Choice(
            "token authorization",
            "off",
            "KServe's readiness probe calls the management API without a token "
            "(KServe #3301); secure the InferenceService at the ingress",
        ),
        Choice("model API", "on", "KServe's TorchServe runtime registers and checks models through it"),
        Choice("model_snapshot", f"{served.name} {served.version}", "KServe's runtime takes model names only from it"),
    ]
    if not opts.storage_uri:
        warnings.append(
            "storageUri is a placeholder (pvc://model-pvc/...): upload torchserve-runtime/ and put its URI there"
        )
    if source.device == "gpu":
        choices.append(Choice("nvidia.com/gpu", "1", "the model runs on a GPU: the pod asks for one"))
    return choices, warnings, _commands(served, opts)


def _batch_rule(source: ModelSource) -> tuple[list[Choice], list[str]]:
    size = source.settings["batchSize"]
    if size <= 1:
        return [], []
    return [
        Choice(
            "batcher",
            f"maxBatchSize {size}, maxLatency {source.settings['maxBatchDelay']} ms",
            "KServe batches instead of TorchServe: the model's batchSize and maxBatchDelay",
        ),
    ], [
        f"batchSize {size} is written as 1: KServe's envelopes answer only the first request of a TorchServe "
        "batch (the others fail with 'number of batch response mismatched'); the InferenceService's batcher "
        "groups instances instead"
    ]


def _python_server(source: ModelSource, out: Path, opts: KServeOptions) -> None:
    mar = ts.copy_archive(source, out / "model-store")
    copy_runtime(out)
    (out / "model.py").write_text(MODEL_PY.format(name=source.name, archive=mar, protocol=opts.protocol))
    (out / "requirements.txt").write_text(requirements(["kserve==0.21.0"]))
    base = "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime" if source.device == "gpu" else "python:3.11-slim"
    (out / "Dockerfile").write_text(
        f"FROM {base}\nWORKDIR /app\nCOPY requirements.txt .\nRUN pip install --no-cache-dir -r requirements.txt\n"
        'COPY . .\nENTRYPOINT ["python", "model.py"]\n'
    )


def _dump(path: Path, doc: dict[str, object]) -> None:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _commands(source: ModelSource, opts: KServeOptions) -> list[str]:
    name = service_name(source.name)
    image = opts.image or f"{name}-kserve:latest"
    route = f"/v1/models/{source.name}:predict" if opts.protocol == "v1" else f"/v2/models/{source.name}/infer"
    return [
        "# KServe's TorchServe runtime: upload torchserve-runtime/ to the storageUri, then",
        "kubectl apply -f inferenceservice-torchserve.yaml",
        "# KServe's Python model server (no TorchServe runtime needed):",
        f"docker build -t {image} python-server && docker push {image}",
        "kubectl apply -f inferenceservice-python.yaml",
        "# locally: cd python-server && pip install -r requirements.txt && python model.py --http_port 8080",
        f"curl -H 'Host: {name}.default.example.com' http://$INGRESS{route} -d @request.json",
    ]


MODEL_PY = '''\
"""KServe's Python model server running {name}'s TorchServe handler unchanged (generated by ts_notebook).

The handler gets what TorchServe's KServe runtime would give it: the archive extracted as its model
dir, a TorchServe Context, and the {protocol} request unpacked by TorchServe's service envelope.
"""

import argparse
import json
import os

import kserve
from kserve.errors import InferenceError
from kserve.protocol.infer_type import InferRequest

from ts_notebook.deploy.runtime import HandlerRuntime

HERE = os.path.dirname(os.path.abspath(__file__))
ARCHIVE = os.path.join(HERE, "model-store", {archive!r})
ENVELOPE = {{"v1": "kserve", "v2": "kservev2"}}


class TorchServeHandler(kserve.Model):
    def __init__(self, name, protocol):
        super().__init__(name)
        self.protocol = protocol
        self.runtime = None
        self.load()

    def load(self):
        self.runtime = HandlerRuntime(ARCHIVE, model_name=self.name, envelope=ENVELOPE[self.protocol])
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None, response_headers=None):
        if isinstance(payload, InferRequest):
            body, _ = payload.to_rest()
            body = dict(body, id=payload.id) if payload.id else body
        else:
            body = payload
        answer = self.runtime.predict(json.dumps(body), "application/json")
        if answer.status != 200:
            raise InferenceError(answer.body.decode("utf-8", "replace"))
        # The envelope's JSON as it is (KServe validates a v2 answer's shape; InferResponse would turn
        # non-numeric BYTES data into strings, which TorchServe does not).
        return answer.json()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    args, _ = parser.parse_known_args()
    name = args.model_name if args.model_name != "model" else {name!r}
    kserve.ModelServer().start([TorchServeHandler(name, args.protocol)])
'''
