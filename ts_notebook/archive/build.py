"""Build a model archive with torch-model-archiver 0.12's options and meaning, faster and safer.

Everything is checked before a byte is written. The archive is written to a uniquely named
temporary path beside its destination and renamed into place only when complete, so a failed or
interrupted build leaves nothing behind and two builds never share a staging folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ts_notebook.archive.checks import (
    check_config_file,
    check_model_file,
    check_model_name,
    resolve_handler,
)
from ts_notebook.archive.layout import Layout, add_extra_files, add_file, add_model_path
from ts_notebook.archive.manifest import RUNTIMES, Manifest
from ts_notebook.archive.read import FORMATS, ArchiveInfo, open_archive
from ts_notebook.archive.writer import Progress, write_folder, write_tgz, write_zip
from ts_notebook.errors import ArchiveError

SUFFIXES = {"default": ".mar", "zip-store": ".mar", "tgz": ".tar.gz", "no-archive": ""}


@dataclass(frozen=True)
class BuildPlan:
    """A checked build: where it goes, what goes in, and the manifest it will carry."""

    target: Path
    archive_format: str
    layout: Layout
    manifest: Manifest
    force: bool
    warnings: tuple[str, ...]
    create_dir: Path | None = None  # a missing --export-path, made when the archive is written

    @property
    def total_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.layout.values())


@dataclass(frozen=True)
class ArchiveSpec:
    """What to package: torch-model-archiver 0.12's flags, by the same names and with the same meaning.

    ``model_path`` is MMS's ``--model-path`` (a folder packed whole, minus hidden and build files).
    The one description of an archive's inputs: the CLI, ``%mar_build`` and :func:`build_archive`
    all fill it in.
    """

    model_name: str
    version: str
    handler: str
    serialized_file: str | None = None
    model_file: str | None = None
    extra_files: str | list[str] | None = None
    runtime: str = "python"
    export_path: str | Path | None = None
    archive_format: str = "default"
    force: bool = False
    requirements_file: str | None = None
    config_file: str | None = None
    model_path: str | Path | None = None

    @classmethod
    def from_args(cls, args: Any) -> ArchiveSpec:
        """A spec from parsed archiver arguments (``argparse.Namespace`` with the flags' dest names)."""
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})


def plan_archive(spec: ArchiveSpec) -> BuildPlan:
    """Check every input and work out the archive's contents, writing nothing.

    Raises:
        ArchiveError: the first problem found, naming the bad value and the fix.
    """
    target = _check_target(spec)
    layout: Layout = {}
    warnings: list[str] = []
    create_dir = None
    if not target.parent.exists():  # torch-model-archiver makes a missing export path, and says so
        create_dir = target.parent
        warnings.append(f"--export-path {create_dir} does not exist: it is created for this archive")
    search: tuple[Path, ...] = ()
    if spec.model_path is not None:
        add_model_path(Path(spec.model_path), layout)
        search = (Path(spec.model_path),)
    # Same order as the reference's copies, so name clashes resolve the same way (last one wins).
    model = add_file("--model-file", spec.model_file, layout, search)
    if model is not None:
        check_model_file(model)
    add_file("--serialized-file", spec.serialized_file, layout, search)
    source = resolve_handler(spec.handler, spec.runtime, search)
    if source.file is not None:
        layout[source.file.name] = source.file
    if spec.extra_files:
        add_extra_files(spec.extra_files, layout, warnings)
    add_file("-r/--requirements-file", spec.requirements_file, layout, search)
    config = add_file("-c/--config-file", spec.config_file, layout, search)
    if config is not None:
        check_config_file(config)
    _drop_target(layout, target)

    manifest = Manifest.new(
        spec.model_name,
        source.manifest_value,
        str(spec.version),
        serialized_file=spec.serialized_file,
        model_file=spec.model_file,
        requirements_file=spec.requirements_file,
        config_file=spec.config_file,
        runtime=spec.runtime,
    )
    return BuildPlan(target, spec.archive_format, layout, manifest, spec.force, tuple(warnings), create_dir)


def _check_target(spec: ArchiveSpec) -> Path:
    """Check the name, version, format and destination; the archive's path."""
    check_model_name(spec.model_name)
    if not spec.version or not str(spec.version).strip():
        raise ArchiveError("--version is required (e.g. --version 1.0): TorchServe serves models by version.")
    if spec.archive_format not in FORMATS:
        raise ArchiveError(f"--archive-format {spec.archive_format!r} is not one of {', '.join(FORMATS)}.")
    if spec.runtime not in RUNTIMES:
        raise ArchiveError(f"--runtime {spec.runtime!r} is not one of {', '.join(RUNTIMES)}.")
    export = Path(spec.export_path) if spec.export_path is not None else Path.cwd()
    if export.exists() and not export.is_dir():
        raise ArchiveError(f"--export-path {export} is a file, not a folder: point it to a folder for the archive.")
    target = export / f"{spec.model_name}{SUFFIXES[spec.archive_format]}"
    if target.exists() and not spec.force:
        raise ArchiveError(
            f"{target} already exists. Pass -f/--force to overwrite it, "
            "or choose another --model-name or --export-path."
        )
    return target


def _drop_target(layout: Layout, target: Path) -> None:
    """Never pack the archive into itself (``--extra-files .`` next to a previous build)."""
    resolved = target.resolve()
    for name, src in list(layout.items()):
        if src.resolve() == resolved or resolved in src.resolve().parents:
            del layout[name]


def write_plan(plan: BuildPlan, progress: Progress | None = None) -> ArchiveInfo:
    """Write a checked plan atomically and describe the result.

    Raises:
        ArchiveError: writing failed (disk full, permissions); nothing is left behind.
    """
    target = plan.target
    parent = target.parent
    tmp: Path | None = None
    made = _make_export_dir(plan)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=parent))
        staged = tmp / target.name
        manifest = plan.manifest.to_json()
        if plan.archive_format == "no-archive":
            write_folder(staged, plan.layout, manifest, progress)
        elif plan.archive_format == "tgz":
            write_tgz(staged, plan.manifest.model_name, plan.layout, manifest, progress)
        else:
            write_zip(staged, plan.layout, manifest, store=plan.archive_format == "zip-store", progress=progress)
        _move_into_place(staged, target, tmp)
    except OSError as exc:
        if made is not None:  # nothing left behind: not even the folder this build made
            shutil.rmtree(made, ignore_errors=True)
            tmp = None
        raise ArchiveError(
            f"could not write {target}: {exc}. Nothing was written; free space or fix permissions and retry."
        ) from exc
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return open_archive(target, plan.warnings)


def _make_export_dir(plan: BuildPlan) -> Path | None:
    """Make a missing export path; the topmost folder made, to remove if the write fails."""
    if plan.create_dir is None or plan.create_dir.exists():
        return None
    top = plan.create_dir
    while not top.parent.exists():
        top = top.parent
    try:
        plan.create_dir.mkdir(parents=True)
    except OSError as exc:
        raise ArchiveError(f"--export-path {plan.create_dir} could not be created: {exc}") from exc
    return top


def _move_into_place(staged: Path, target: Path, tmp: Path) -> None:
    parked = None
    if target.is_dir() and not target.is_symlink():
        # A folder cannot be replaced atomically: park the old one in our temp folder, then swap.
        parked = tmp / "previous"
        os.replace(target, parked)
    try:
        os.replace(staged, target)
    except OSError:
        if parked is not None:
            os.replace(parked, target)
        raise


def build_archive(
    model_name: str, version: str, handler: str, *, progress: Progress | None = None, **options: Any
) -> ArchiveInfo:
    """Check the inputs, then write the archive; ``options`` are :class:`ArchiveSpec`'s other fields.

    ``progress`` is called with a byte count as data is written (for a progress bar).

    Raises:
        ArchiveError: a bad input (nothing written) or a failed write (nothing left behind).
        TypeError: an option that is not one of ArchiveSpec's fields.
    """
    return write_plan(plan_archive(ArchiveSpec(model_name, version, handler, **options)), progress)
