"""Backend settings: TorchServe's start options and the ``config.properties`` keys that matter on
one machine, with TorchServe's defaults except where safety says otherwise (addresses stay on
127.0.0.1; port 0 picks a free port)."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ts_notebook.errors import BackendError
from ts_notebook.properties import read_properties

DEFAULT_MAX_SIZE = 6553500  # TorchServe's max_request_size / max_response_size


@dataclass
class Config:
    """Everything the backend needs to start."""

    model_store: Path | None = None
    models: list[str] = field(default_factory=list)
    inference_address: str = "http://127.0.0.1:8080"
    management_address: str = "http://127.0.0.1:8081"
    metrics_address: str = "http://127.0.0.1:8082"
    default_workers_per_model: int = max(1, os.cpu_count() or 1)  # start-up models without minWorkers
    # what config.properties said (0 if nothing): TorchServe's default initial_workers on registration
    configured_default_workers: int = 0
    job_queue_size: int = 100
    max_request_size: int = DEFAULT_MAX_SIZE
    max_response_size: int = DEFAULT_MAX_SIZE
    default_response_timeout: int = 120
    disable_token_authorization: bool = False
    enable_model_api: bool = False
    allowed_urls: list[str] = field(default_factory=lambda: [r"file://.*"])
    gpus: list[int] | None = None  # None: every GPU the zygote sees
    run_dir: Path | None = None  # None: a private per-user folder (see from_args), never the working dir
    parent_pid: int | None = None
    # Our own keys: how many served requests per model are kept for replay, and the body bytes kept
    # per request (a longer body is kept cut, marked so, and replays cut).
    ts_notebook_replay_count: int = 200
    ts_notebook_replay_body_bytes: int = 1 << 20
    ts_notebook_stage_timings: bool = True  # workers time each handler stage (two clock reads a stage)
    # Slow clients are cut off: a connection that has not sent a whole request head within this many
    # seconds (also how long an idle keep-alive connection stays open), and a body that takes longer.
    ts_notebook_header_timeout: int = 5
    ts_notebook_body_timeout: int = 30
    # TorchServe's metrics keys; our default mode is prometheus where TorchServe's is log (an empty /metrics).
    metrics_mode: str = "prometheus"
    model_metrics_auto_detect: bool = False
    service_envelope: str | None = None  # body | json | kserve | kservev2: how workers unpack requests
    metrics_config: Path | None = None  # a metrics.yaml declaring model metrics (TorchServe's defaults if None)

    @staticmethod
    def host_port(address: str) -> tuple[str, int]:
        parts = urlsplit(address if "://" in address else f"http://{address}")
        return parts.hostname or "127.0.0.1", parts.port if parts.port is not None else 80


_INT_KEYS = (
    "default_workers_per_model",
    "job_queue_size",
    "max_request_size",
    "max_response_size",
    "default_response_timeout",
    "ts_notebook_replay_count",
    "ts_notebook_replay_body_bytes",
    "ts_notebook_header_timeout",
    "ts_notebook_body_timeout",
)
_STR_KEYS = ("inference_address", "management_address", "metrics_address")


def _bool(value: str) -> bool:
    return value.strip().lower() == "true"


def apply_properties(config: Config, props: dict[str, str]) -> None:
    for key in _STR_KEYS:
        if key in props:
            setattr(config, key, props[key])
    for key in _INT_KEYS:
        if key in props:
            try:
                setattr(config, key, int(props[key]))
            except ValueError as exc:
                raise BackendError(f"config.properties: {key}={props[key]!r} is not a whole number.") from exc
    if "default_workers_per_model" in props:
        config.configured_default_workers = config.default_workers_per_model
    _metrics_properties(config, props)
    for key in ("disable_token_authorization", "enable_model_api", "ts_notebook_stage_timings"):
        if key in props:
            setattr(config, key, _bool(props[key]))
    if "model_store" in props:
        config.model_store = Path(props["model_store"])
    if "load_models" in props and props["load_models"].strip():
        config.models = [m.strip() for m in props["load_models"].split(",") if m.strip()]
    if "allowed_urls" in props:
        config.allowed_urls = [u.strip() for u in props["allowed_urls"].split(",") if u.strip()]


def _metrics_properties(config: Config, props: dict[str, str]) -> None:
    if "metrics_mode" in props:
        mode = props["metrics_mode"].strip().lower()
        if mode not in ("log", "prometheus"):
            raise BackendError(f"config.properties: metrics_mode={props['metrics_mode']!r}: use log or prometheus.")
        config.metrics_mode = mode
    if "model_metrics_auto_detect" in props:
        config.model_metrics_auto_detect = _bool(props["model_metrics_auto_detect"])
    envelope = props.get("service_envelope", "").strip()
    if envelope:
        from ts_notebook.handler.envelopes import ENVELOPES

        if envelope not in ENVELOPES:
            raise BackendError(f"config.properties: service_envelope={envelope!r}: use one of {', '.join(ENVELOPES)}.")
        config.service_envelope = envelope
    if props.get("metrics_config", "").strip():
        config.metrics_config = Path(props["metrics_config"].strip())


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ts_notebook.backend", description="ts_notebook's embedded serving backend."
    )
    p.add_argument("--model-store", help="Folder of archives that registrations and --models refer to.")
    p.add_argument("--models", nargs="+", default=[], help="NAME=PATH ... (or 'all') to load at start.")
    p.add_argument("--ts-config", help="A TorchServe config.properties file.")
    p.add_argument("--ncs", action="store_true", help="Accepted for TorchServe compatibility (no snapshots are kept).")
    p.add_argument("--disable-token-auth", action="store_true", help="Serve without token authorization.")
    p.add_argument("--enable-model-api", action="store_true", help="Allow register/unregister over HTTP.")
    p.add_argument("--gpus", help="Comma-separated GPU ids to use ('none' for CPU only). Default: all visible.")
    p.add_argument("--run-dir", help="Folder for the info file, sockets, keys and extracted models.")
    p.add_argument("--parent-pid", type=int, help="Exit when this process exits (the notebook kernel).")
    return p


def from_args(argv: list[str] | None = None) -> Config:
    args = parser().parse_args(argv)
    config = Config()
    if args.ts_config:
        apply_properties(config, read_properties(Path(args.ts_config)))
    if args.model_store:
        config.model_store = Path(args.model_store)
    if args.models:
        config.models = list(args.models)
    config.disable_token_authorization |= args.disable_token_auth
    config.enable_model_api |= args.enable_model_api
    if args.gpus:
        config.gpus = [] if args.gpus.strip().lower() == "none" else [int(g) for g in args.gpus.split(",") if g.strip()]
    if args.run_dir:
        config.run_dir = Path(args.run_dir)
    else:  # like the launcher's: the key file, sockets and model cache stay private to this user
        from ts_notebook.backend.ipc import records_dir

        config.run_dir = records_dir() / f"cli-{os.getpid()}"
    config.run_dir = config.run_dir.resolve()  # workers chdir into model dirs: every path must be absolute
    if config.model_store is not None:
        config.model_store = config.model_store.resolve()
    config.parent_pid = args.parent_pid
    for name in ("inference_address", "management_address", "metrics_address"):
        host, _ = Config.host_port(getattr(config, name))
        if host not in ("127.0.0.1", "localhost", "::1"):
            # Not refused: a user may really want it; but say so loudly on stderr at start-up.
            print(f"warning: {name} {getattr(config, name)} is not a loopback address", flush=True)
    return config
