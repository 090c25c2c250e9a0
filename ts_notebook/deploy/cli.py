"""``ts-notebook-export ARCHIVE --to {torchserve,kserve,ray} DIR``; ``%ts_export`` parses its line with the
same parser (and also takes the name of a model the notebook's backend serves)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

from ts_notebook.deploy.export import TARGETS, export
from ts_notebook.deploy.report import ExportReport
from ts_notebook.deploy.source import ModelSource, from_archive
from ts_notebook.deploy.to_kserve import KServeOptions
from ts_notebook.deploy.to_ray import RayOptions
from ts_notebook.deploy.to_torchserve import TorchServeOptions
from ts_notebook.errors import TsNotebookError


def export_parser(
    prog: str = "ts-notebook-export", parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser
) -> argparse.ArgumentParser:
    p = parser_class(prog=prog, description="Write a deployment of a model for TorchServe, KServe or Ray Serve.")
    p.add_argument("model", help="a .mar, .tar.gz or model folder (in the notebook: also a served model's name)")
    p.add_argument("--to", required=True, choices=TARGETS, help="the serving engine to ship to")
    p.add_argument("dir", help="folder to write (new or empty; --force replaces it)")
    p.add_argument("--name", help="model name in the deployment (default: the model's)")
    p.add_argument("--force", action="store_true", help="replace DIR if it is not empty")
    p.add_argument("--host", help="address to listen on (default 0.0.0.0, as a container or cluster needs)")
    p.add_argument("--port", type=int, help="torchserve: inference port, management +1, metrics +2; ray: HTTP port")
    p.add_argument("--no-token", action="store_true", help="torchserve: token authorization off (default on)")
    p.add_argument("--model-api", action="store_true", help="torchserve: allow registering models over the API")
    p.add_argument("--protocol", default="v1", choices=("v1", "v2"), help="kserve: inference protocol (default v1)")
    p.add_argument("--storage-uri", default="", help="kserve: where torchserve-runtime/ will be uploaded")
    p.add_argument("--image", default="", help="kserve: image name for the Python model server")
    return p


class TargetOptions(TypedDict):
    """``export``'s per-target keyword arguments, so ``**options(args)`` is checked against them."""

    torchserve: TorchServeOptions
    kserve: KServeOptions
    ray: RayOptions


def options(args: Any) -> TargetOptions:
    """The per-target options from parsed arguments."""
    host = args.host or "0.0.0.0"
    port = args.port
    ts_ports = {}
    if port is not None:
        ts_ports = {"inference_port": port, "management_port": port + 1, "metrics_port": port + 2}
    return {
        "torchserve": TorchServeOptions(host=host, token_auth=not args.no_token, model_api=args.model_api, **ts_ports),
        "kserve": KServeOptions(protocol=args.protocol, storage_uri=args.storage_uri, image=args.image),
        "ray": RayOptions(host=host, port=port if port is not None else 8000),
    }


def run(source: ModelSource, args: Any) -> ExportReport:
    """Export ``source`` as the parsed arguments say."""
    return export(source, args.to, Path(args.dir), force=args.force, **options(args))


def main(argv: Sequence[str] | None = None) -> int:
    args = export_parser().parse_args(argv)
    try:
        report = run(from_archive(args.model, args.name), args)
    except TsNotebookError as exc:
        print(f"ts-notebook-export: error: {exc}", file=sys.stderr)
        return 2
    print(report.to_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
