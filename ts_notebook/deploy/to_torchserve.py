"""Export for a TorchServe container: ``model-store/``, ``config/config.properties`` with a
``model_snapshot`` that loads the model at start, a Dockerfile on the official image, DEPLOY.md.

Why a snapshot: the stock image's config loads no model (no ``load_models``, no snapshot) and since
0.11.1 its model API is off, so a copied archive would never be served. The snapshot carries the
model's real workers, batching and timeout, which ``load_models`` cannot.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from ts_notebook.deploy.report import Choice
from ts_notebook.deploy.source import ModelSource

IMAGE = "pytorch/torchserve:0.12.0"
HOME = "/home/model-server"
_SNAPSHOT_KEYS = ("minWorkers", "maxWorkers", "batchSize", "maxBatchDelay", "responseTimeout")
_ORIGIN = {
    "served": "what the served model runs",
    "model-config.yaml": "the archive's model-config.yaml",
    "default": "TorchServe's default",
    "export": "set for this export",
}


@dataclass(frozen=True)
class TorchServeOptions:
    """Addresses and security of the exported server (the safe defaults: tokens on, model API off)."""

    host: str = "0.0.0.0"  # a container must listen on all its interfaces to be reachable
    inference_port: int = 8080
    management_port: int = 8081
    metrics_port: int = 8082
    grpc_inference_port: int = 7070
    grpc_management_port: int = 7071
    token_auth: bool = True
    model_api: bool = False
    model_store: str = f"{HOME}/model-store"


def archive_file_name(source: ModelSource) -> str:
    suffix = {"mar": ".mar", "tgz": ".tar.gz", "no-archive": ""}[source.archive_format]
    return f"{source.name}{suffix}"


def copy_archive(source: ModelSource, store: Path) -> str:
    """Put the archive into ``store`` under the model's name; returns that file name."""
    store.mkdir(parents=True, exist_ok=True)
    name = archive_file_name(source)
    if source.archive.is_dir():
        shutil.copytree(source.archive, store / name)
    else:
        shutil.copy2(source.archive, store / name)
    return name


def snapshot(source: ModelSource, mar_name: str) -> str:
    """The one-line ``model_snapshot`` JSON that registers the model with its settings at start."""
    version = {"defaultVersion": True, "marName": mar_name, **{k: source.settings[k] for k in _SNAPSHOT_KEYS}}
    body = {"name": "startup.cfg", "modelCount": 1, "models": {source.name: {source.version: version}}}
    return json.dumps(body, separators=(",", ":"))


def setting_choices(source: ModelSource) -> list[Choice]:
    out = [Choice(key, str(source.settings[key]), _ORIGIN[source.origin.get(key, "default")]) for key in _SNAPSHOT_KEYS]
    out.append(Choice("device", source.device, _ORIGIN[source.origin.get("device", "default")]))
    return out


def properties(source: ModelSource, mar_name: str, opts: TorchServeOptions) -> tuple[dict[str, str], list[Choice]]:
    """config.properties entries and the reasons for those a user would ask about."""
    h = opts.host
    props = {
        "inference_address": f"http://{h}:{opts.inference_port}",
        "management_address": f"http://{h}:{opts.management_port}",
        "metrics_address": f"http://{h}:{opts.metrics_port}",
        "grpc_inference_address": h,
        "grpc_inference_port": str(opts.grpc_inference_port),
        "grpc_management_address": h,
        "grpc_management_port": str(opts.grpc_management_port),
        "model_store": opts.model_store,
        "model_snapshot": snapshot(source, mar_name),
        "disable_token_authorization": str(not opts.token_auth).lower(),
        "enable_model_api": str(opts.model_api).lower(),
        "metrics_mode": "prometheus",
    }
    token_why = (
        "safe default: every call needs 'Authorization: Bearer <key>' from key_file.json, which TorchServe writes "
        "in its working dir at each start (keys expire after 60 min; the management key renews them)"
        if opts.token_auth
        else "asked: anyone who reaches the ports can predict and manage (put it behind your own auth)"
    )
    api_why = (
        "safe default: the model in the snapshot is served, describe and scale work, registering or deleting "
        "models over the API is refused"
        if not opts.model_api
        else "asked: the management API can register archives from the model store (and URLs allowed)"
    )
    choices = [
        Choice(
            "addresses",
            f"{h}:{opts.inference_port}/{opts.management_port}/{opts.metrics_port}",
            "all interfaces, as a container needs" if h == "0.0.0.0" else "as asked",
        ),
        Choice(
            "model_snapshot",
            f"{source.name} {source.version} from {mar_name}",
            "loads the model at start (the stock image's config loads none)",
        ),
        Choice("token authorization", "on" if opts.token_auth else "off", token_why),
        Choice("model API", "on" if opts.model_api else "off", api_why),
        Choice("metrics_mode", "prometheus", "so /metrics answers as in the notebook (TorchServe's default is log)"),
    ]
    if source.requirements:
        props["install_py_dep_per_model"] = "true"
        choices.append(
            Choice("install_py_dep_per_model", "true", "the archive ships a requirements file: pip installs it at load")
        )
    return props, choices


def write_properties(path: Path, props: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))


def dockerfile(gpu: bool) -> str:
    tag = f"{IMAGE}-{'gpu' if gpu else 'cpu'}"
    return (
        f"# TorchServe 0.12.0's official image; its entrypoint runs torchserve with {HOME}/config.properties.\n"
        f"FROM {tag}\n"
        f"COPY --chown=model-server config/config.properties {HOME}/config.properties\n"
        f"COPY --chown=model-server model-store/ {HOME}/model-store/\n"
        "EXPOSE 8080 8081 8082 7070 7071\n"
    )


def commands(source: ModelSource, opts: TorchServeOptions) -> list[str]:
    image = f"{source.name.lower()}-torchserve"
    gpus = "--gpus all " if source.device == "gpu" else ""
    ports = " ".join(f"-p {p}:{p}" for p in (opts.inference_port, opts.management_port, opts.metrics_port))
    auth = ' -H "Authorization: Bearer $KEY"' if opts.token_auth else ""
    lines = [
        f"docker build -t {image} .",
        f"docker run -d --name {image} {gpus}{ports} {image}",
    ]
    if opts.token_auth:
        read_key = "import json; print(json.load(open('key_file.json'))['inference']['key'])"
        lines.append(f'KEY=$(docker exec {image} python -c "{read_key}")')
    lines += [
        f"curl{auth} http://127.0.0.1:{opts.inference_port}/predictions/{source.name} --data-binary @request.json",
        "# without Docker: torchserve --start --ncs --ts-config config/config.properties --model-store model-store",
    ]
    return lines
