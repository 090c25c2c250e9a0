"""``ts-notebook-archive``: a drop-in for ``torch-model-archiver`` (same flags, same meaning),
plus MMS's ``--model-path``. ``%mar_build`` parses its line with the same parser.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from ts_notebook.archive.build import ArchiveSpec, BuildPlan, plan_archive, write_plan
from ts_notebook.archive.manifest import RUNTIMES
from ts_notebook.archive.read import FORMATS
from ts_notebook.errors import TsNotebookError


def archiver_parser(
    prog: str = "ts-notebook-archive", parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser
) -> argparse.ArgumentParser:
    """torch-model-archiver 0.12's arguments (required ones included), plus ``--model-path``."""
    p = parser_class(
        prog=prog,
        description="Build a TorchServe model archive; same flags and meaning as torch-model-archiver 0.12.",
    )
    p.add_argument(
        "--model-name", required=True, help="Model name; the archive is MODEL_NAME.mar. Letters, digits, _ - ."
    )
    p.add_argument("-v", "--version", required=True, help="Model version, e.g. 1.0.")
    p.add_argument("--serialized-file", help="Weights: a state_dict .pt/.pth, a TorchScript .pt, .onnx, ...")
    p.add_argument("--model-file", help="Python file with exactly one torch.nn.Module class (eager models).")
    p.add_argument(
        "--handler",
        required=True,
        help="Built-in handler name (image_classifier, ...), path/handler.py, path/module or path/module:function.",
    )
    p.add_argument(
        "--extra-files", help="Comma-separated files, folders (their contents) or globs, flattened to the root."
    )
    p.add_argument("--runtime", default="python", choices=RUNTIMES, help="Runtime (default python).")
    p.add_argument("--export-path", help="Folder to write the archive to (default: the current folder).")
    p.add_argument(
        "--archive-format",
        default="default",
        choices=FORMATS,
        help="default: .mar zip; zip-store: .mar without compression; tgz: .tar.gz; no-archive: a folder.",
    )
    p.add_argument("-f", "--force", action="store_true", help="Overwrite an existing archive of the same name.")
    p.add_argument("-r", "--requirements-file", help="requirements.txt to ship inside the archive.")
    p.add_argument("-c", "--config-file", help="model-config.yaml (workers, batching, timeouts, handler settings).")
    p.add_argument("--model-path", help="MMS-style: pack this whole folder (minus hidden and build files).")
    return p


def plan_from_args(args: Any) -> BuildPlan:
    """A checked build plan from parsed archiver arguments."""
    return plan_archive(ArchiveSpec.from_args(args))


def check_parser(prog: str = "ts-notebook-archive check") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Why won't it load? Every cause found, with its fix.")
    p.add_argument("path", help="A .mar, .tar.gz or model folder.")
    p.add_argument("--ts-config", help="The config.properties it will be served with (its settings are checked too).")
    p.add_argument("--timeout", type=float, help="Seconds initialize may take (default: startupTimeout, 120).")
    p.add_argument("--model-store", help="The model store it goes into (leftover archives of the same name).")
    p.add_argument("--no-run", action="store_true", help="Only read the archive; do not run initialize.")
    return p


def check(argv: Sequence[str]) -> int:
    """``ts-notebook-archive check PATH``: print the doctor's report; exit 1 when it found an error."""
    from ts_notebook.doctor import diagnose

    args = check_parser().parse_args(argv)
    report = diagnose(
        args.path, ts_config=args.ts_config, time_limit=args.timeout, store=args.model_store, run=not args.no_run
    )
    print(report.text())
    return 1 if report.errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Build an archive; print the error and exit 1 on bad input (nothing is written then).
    ``check PATH ...`` runs the load-failure doctor instead."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["check"]:
        return check(argv[1:])
    args = archiver_parser().parse_args(argv)
    try:
        plan = plan_from_args(args)
        if plan.force and plan.target.exists():
            print(f"WARNING - Overwriting {plan.target} ...", file=sys.stderr)
        for warning in plan.warnings:
            print(f"WARNING - {warning}", file=sys.stderr)
        write_plan(plan)
    except TsNotebookError as exc:
        print(f"ERROR - {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
