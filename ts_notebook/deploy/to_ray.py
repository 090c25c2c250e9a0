"""Export for Ray Serve: an application whose replicas each run the archive's handler unchanged in
our runtime (TorchServe's Context and ``ts`` names), on TorchServe's ``/predictions/NAME`` route.

The mapping: a TorchServe worker is a replica (minWorkers..maxWorkers become a fixed count or an
autoscaling range), ``batchSize``/``maxBatchDelay`` become ``@serve.batch``'s ``max_batch_size`` and
``batch_wait_timeout_s``, ``responseTimeout`` the proxy's request timeout, a GPU model asks each
replica for one GPU. ``serve_config.yaml`` is what ``serve build`` would write, so ``serve run`` and
``serve deploy`` take it as it is.
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

RAY_VERSION = "2.60.0"


@dataclass(frozen=True)
class RayOptions:
    host: str = "0.0.0.0"  # Serve's HTTP proxy; 0.0.0.0 so the cluster's clients reach it
    port: int = 8000
    cpus_per_replica: float = 1.0


def class_name(model: str) -> str:
    words = re.split(r"[^A-Za-z0-9]+", model)
    name = "".join(w[:1].upper() + w[1:] for w in words if w) or "Model"
    return name if name[0].isalpha() else f"M{name}"


def deployment_options(source: ModelSource, opts: RayOptions) -> dict[str, object]:
    s = source.settings
    options: dict[str, object] = {
        "name": source.name,
        "ray_actor_options": {"num_cpus": opts.cpus_per_replica, "num_gpus": 1 if source.device == "gpu" else 0},
        # TorchServe queues per worker; Serve's replica takes this many requests at once (enough to fill a batch).
        "max_ongoing_requests": max(2 * s["batchSize"], 5),
    }
    if s["minWorkers"] == s["maxWorkers"]:
        options["num_replicas"] = s["minWorkers"]
    else:
        options["autoscaling_config"] = {"min_replicas": s["minWorkers"], "max_replicas": s["maxWorkers"]}
    return options


def serve_config(source: ModelSource, opts: RayOptions) -> dict[str, object]:
    return {
        "proxy_location": "EveryNode",
        "http_options": {
            "host": opts.host,
            "port": opts.port,
            "request_timeout_s": source.settings["responseTimeout"],
        },
        "applications": [
            {
                "name": source.name,
                "route_prefix": f"/predictions/{source.name}",
                "import_path": "app:app",
                "deployments": [{"name": source.name, **deployment_options(source, opts)}],
            }
        ],
    }


def write(source: ModelSource, folder: Path, opts: RayOptions) -> tuple[list[Choice], list[str], list[str]]:
    """Write app.py, serve_config.yaml, the archive and the runtime into ``folder``."""
    mar = ts.copy_archive(source, folder / "model-store")
    copy_runtime(folder)
    s = source.settings
    options = deployment_options(source, opts)
    (folder / "app.py").write_text(
        APP_PY.format(
            name=source.name,
            cls=class_name(source.name),
            archive=mar,
            options=repr(options),
            batch=s["batchSize"],
            wait=s["maxBatchDelay"] / 1000,
        )
    )
    (folder / "serve_config.yaml").write_text(yaml.safe_dump(serve_config(source, opts), sort_keys=False))
    (folder / "requirements.txt").write_text(requirements([f"ray[serve]=={RAY_VERSION}"]))
    low, high = s["minWorkers"], s["maxWorkers"]
    replicas = str(low) if low == high else f"{low}..{high} (autoscaling)"
    choices = [
        *ts.setting_choices(source),
        Choice("replicas", replicas, "one replica per TorchServe worker (minWorkers..maxWorkers)"),
        Choice(
            "@serve.batch",
            f"max_batch_size {s['batchSize']}, batch_wait_timeout_s {s['maxBatchDelay'] / 1000}",
            "TorchServe's batchSize and maxBatchDelay",
        ),
        Choice("route_prefix", f"/predictions/{source.name}", "TorchServe's route: clients keep their URL"),
        Choice("request_timeout_s", str(s["responseTimeout"]), "TorchServe's responseTimeout"),
        Choice("num_gpus", "1" if source.device == "gpu" else "0", f"the model runs on the {source.device.upper()}"),
    ]
    warnings = []
    if opts.host == "0.0.0.0":
        warnings.append("Serve's proxy listens on all interfaces and Ray Serve has no token auth: put it behind yours")
    commands = [
        "pip install -r requirements.txt",
        "serve run serve_config.yaml            # a local Ray, in the foreground",
        "serve build app:app -o serve_config.yaml  # regenerate the config after editing app.py",
        "# to a cluster: zip this folder to remote storage, add runtime_env: {working_dir: <its URI>} to the",
        "# application in serve_config.yaml (Serve configs take only remote working dirs), then",
        "serve deploy serve_config.yaml",
        f"curl http://127.0.0.1:{opts.port}/predictions/{source.name} --data-binary @request.json",
    ]
    return choices, warnings, commands


APP_PY = '''\
"""Ray Serve application running {name}'s TorchServe handler unchanged (generated by ts_notebook).

Each replica loads the archive as a TorchServe worker would (model dir as working dir, TorchServe's
Context, the ts names) and answers TorchServe's /predictions/{name} route with the same bytes.
"""

import os

from ray import serve
from starlette.requests import Request
from starlette.responses import Response

from ts_notebook.deploy.runtime import HandlerRuntime

HERE = os.path.dirname(os.path.abspath(__file__))
ARCHIVE = os.path.join(HERE, "model-store", {archive!r})


@serve.deployment(**{options})
class {cls}:
    def __init__(self):
        self.runtime = HandlerRuntime(ARCHIVE, model_name={name!r}, batch_size={batch})

    @serve.batch(max_batch_size={batch}, batch_wait_timeout_s={wait})
    async def handle_batch(self, requests):
        return self.runtime.handle([self.runtime.request(body, None, headers) for body, headers in requests])

    async def __call__(self, request: Request) -> Response:
        answer = await self.handle_batch((await request.body(), dict(request.headers)))
        return Response(answer.body, status_code=answer.status, headers=answer.headers, media_type=answer.content_type)


app = {cls}.bind()
'''
