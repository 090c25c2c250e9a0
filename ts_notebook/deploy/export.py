"""``export(source, to, folder)``: write a deployment of one model for TorchServe, KServe or Ray Serve.

The folder is written beside its final place and renamed into it at the end, so a failed export
leaves nothing half-written; an existing non-empty folder is only replaced with ``force``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ts_notebook.deploy import to_kserve, to_ray, to_torchserve
from ts_notebook.deploy.report import Choice, ExportReport
from ts_notebook.deploy.source import ExportError, ModelSource

TARGETS = ("torchserve", "kserve", "ray")


def export(
    source: ModelSource,
    to: str,
    folder: str | os.PathLike[str],
    *,
    force: bool = False,
    torchserve: to_torchserve.TorchServeOptions | None = None,
    kserve: to_kserve.KServeOptions | None = None,
    ray: to_ray.RayOptions | None = None,
) -> ExportReport:
    """Write ``source``'s deployment for target ``to`` into ``folder``.

    Raises:
        ExportError: an unknown target, or ``folder`` exists, is not empty and ``force`` is false.
    """
    if to not in TARGETS:
        raise ExportError(f"--to {to!r}: choose one of {', '.join(TARGETS)}")
    final = Path(folder).resolve()
    if final.exists() and (not final.is_dir() or any(final.iterdir())) and not force:
        raise ExportError(f"{final} exists and is not empty: choose a new folder, or pass --force to replace it")
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        choices, warnings, commands = _write(source, to, staging, torchserve, kserve, ray)
        report = _report(source, to, final, staging, choices, warnings, commands)
        (staging / "DEPLOY.md").write_text(report.to_markdown())
        if final.exists():
            shutil.rmtree(final) if final.is_dir() else final.unlink()
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def _write(source: ModelSource, to: str, out: Path, *opts: Any) -> tuple[list[Choice], list[str], list[str]]:
    ts_opts, ks_opts, ray_opts = opts
    if to == "kserve":
        return to_kserve.write(source, out, ks_opts or to_kserve.KServeOptions())
    if to == "ray":
        return to_ray.write(source, out, ray_opts or to_ray.RayOptions())
    return _torchserve(source, out, ts_opts or to_torchserve.TorchServeOptions())


def _torchserve(
    source: ModelSource, out: Path, opts: to_torchserve.TorchServeOptions
) -> tuple[list[Choice], list[str], list[str]]:
    mar = to_torchserve.copy_archive(source, out / "model-store")
    props, choices = to_torchserve.properties(source, mar, opts)
    to_torchserve.write_properties(out / "config" / "config.properties", props)
    (out / "Dockerfile").write_text(to_torchserve.dockerfile(source.device == "gpu"))
    image = f"{to_torchserve.IMAGE}-{'gpu' if source.device == 'gpu' else 'cpu'}"
    why = "the model runs on a GPU" if source.device == "gpu" else "the model runs on the CPU"
    choices = to_torchserve.setting_choices(source) + choices + [Choice("image", image, why)]
    warnings = []
    if source.requirements:
        warnings.append("install_py_dep_per_model=true: the container needs network access to PyPI when it starts")
    return choices, warnings, to_torchserve.commands(source, opts)


def _report(
    source: ModelSource,
    to: str,
    folder: Path,
    written: Path,
    choices: list[Choice],
    warnings: list[str],
    commands: list[str],
) -> ExportReport:
    listed = {
        str(p.relative_to(written))
        for p in written.rglob("*")
        if p.is_file() and "ts_notebook" not in p.relative_to(written).parts and "__pycache__" not in p.parts
    }
    files = sorted(listed | {"DEPLOY.md"})  # written from this report, beside the rest
    notes = ("ts_notebook/ holds the handler runtime (Context, ts layer, request shaping); it needs torch and PyYAML",)
    return ExportReport(
        to,
        folder,
        source.name,
        tuple(files),
        tuple(choices),
        tuple(warnings),
        tuple(commands),
        notes if to in ("kserve", "ray") else (),
    )
