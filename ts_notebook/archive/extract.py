"""Safe extraction: nothing is written outside the target, and bombs are refused before a byte
lands. Refused: absolute names, ``..`` components, links and device files, zip members that
overlap (the trick behind non-recursive zip bombs), and archives whose expanded size or
compression ratio is beyond the limits.
"""

from __future__ import annotations

import hashlib
import itertools
import shutil
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from ts_notebook.archive.manifest import MANIFEST_PATH
from ts_notebook.archive.read import tar_prefix
from ts_notebook.errors import ArchiveError, UnsafeArchiveError

DEFAULT_MAX_BYTES = 64 << 30
DEFAULT_MAX_RATIO = 200.0
RATIO_FLOOR = 64 << 20  # small archives may compress as well as they like


@dataclass(frozen=True)
class Limits:
    """How much an archive may expand to: in total bytes, and as a multiple of its own size."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_ratio: float = DEFAULT_MAX_RATIO


def _check_name(archive: Path, name: str) -> PurePosixPath:
    clean = name.replace("\\", "/")
    pure = PurePosixPath(clean)
    if clean.startswith("/") or (len(clean) > 1 and clean[1] == ":"):
        raise UnsafeArchiveError(
            f"{archive}: member {name!r} has an absolute path and would be written outside the target. "
            "Refusing to extract; rebuild the archive with relative names."
        )
    if ".." in pure.parts:
        raise UnsafeArchiveError(
            f"{archive}: member {name!r} climbs out of the target with '..'. Refusing to extract; this archive "
            "is malformed or malicious."
        )
    return pure


def _check_totals(archive: Path, total: int, limits: Limits) -> None:
    if total > limits.max_bytes:
        raise UnsafeArchiveError(
            f"{archive}: would expand to {total} bytes, over the limit of {limits.max_bytes}. If you trust "
            "it, raise the limit (max_bytes=...)."
        )
    packed = max(archive.stat().st_size, 1)
    if total > RATIO_FLOOR and total / packed > limits.max_ratio:
        raise UnsafeArchiveError(
            f"{archive}: expands {total / packed:.0f}x ({packed} -> {total} bytes), which marks a "
            f"decompression bomb (limit {limits.max_ratio:.0f}x). If you trust it, raise max_ratio."
        )


def _zip_members(archive: Path, zf: zipfile.ZipFile, limits: Limits) -> list[tuple[PurePosixPath, zipfile.ZipInfo]]:
    members = []
    spans: list[tuple[int, int, str]] = []
    for info in zf.infolist():
        pure = _check_name(archive, info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UnsafeArchiveError(
                f"{archive}: member {info.filename!r} is a symbolic link; links can point outside the target. "
                "Refusing to extract; package the file itself instead of a link."
            )
        spans.append(
            (info.header_offset, info.header_offset + 30 + len(info.filename) + info.compress_size, info.filename)
        )
        if not info.is_dir():
            members.append((pure, info))
    spans.sort()
    for (_, end, first), (start, _, second) in itertools.pairwise(spans):
        if start < end:
            raise UnsafeArchiveError(
                f"{archive}: members {first!r} and {second!r} overlap in the file, the construction of a zip "
                "bomb. Refusing to extract."
            )
    _check_totals(archive, sum(i.file_size for _, i in members), limits)
    return members


def extract_archive(archive: str | Path, dest: str | Path, *, limits: Limits | None = None) -> Path:
    """Extract a ``.mar``, ``.tar.gz`` or copy a ``no-archive`` folder into ``dest``.

    ``dest`` must not exist or be empty. The tgz layout's top folder is removed, so ``dest`` holds
    the model files exactly as TorchServe's model dir would. Every member is checked before
    anything is written; if writing fails midway, ``dest`` is removed again.

    Raises:
        UnsafeArchiveError: the archive breaks a safety rule (message says which member and why).
        ArchiveError: ``dest`` is not empty, or the archive cannot be read.
    """
    src, out = Path(archive), Path(dest)
    lim = limits or Limits()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ArchiveError(f"{out} already exists and is not an empty folder. Extract into a new folder.")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            _copy_folder(src, out, lim)
        elif zipfile.is_zipfile(src):
            _extract_zip(src, out, lim)
        else:
            _extract_tar(src, out, lim)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        else:
            for child in out.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise
    return out


def _write(stream: IO[bytes], target: Path, limit: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(target, "xb") as fh:
        while chunk := stream.read(1 << 20):
            written += len(chunk)
            if written > limit:
                raise UnsafeArchiveError(f"{target.name}: expands beyond its declared size; refusing to extract.")
            fh.write(chunk)


def _extract_zip(src: Path, out: Path, limits: Limits) -> None:
    with zipfile.ZipFile(src) as zf:
        members = _zip_members(src, zf, limits)
        for pure, info in members:
            with zf.open(info) as stream:
                _write(stream, out.joinpath(*pure.parts), info.file_size)


def _extract_tar(src: Path, out: Path, limits: Limits) -> None:
    try:
        tar = tarfile.open(src)  # noqa: SIM115 - closed by the `with` below, after the error check
    except (tarfile.TarError, OSError) as exc:
        raise ArchiveError(f"{src}: not a readable zip or tar.gz archive ({exc}).") from exc
    with tar:
        members = tar.getmembers()
        for m in members:
            _check_name(src, m.name)
            if not (m.isfile() or m.isdir()):
                kind = "link" if (m.issym() or m.islnk()) else "special file"
                raise UnsafeArchiveError(
                    f"{src}: member {m.name!r} is a {kind}; only regular files are extracted. Refusing to extract."
                )
        files = [m for m in members if m.isfile()]
        _check_totals(src, sum(m.size for m in files), limits)
        prefix = tar_prefix([m.name for m in files])
        for m in files:
            stream = tar.extractfile(m)
            if stream is not None:
                rel = PurePosixPath(m.name[len(prefix) :])
                _write(stream, out.joinpath(*rel.parts), m.size)


def _copy_folder(src: Path, out: Path, limits: Limits) -> None:
    files = [p for p in sorted(src.rglob("*")) if p.is_file() or p.is_symlink()]
    for p in files:
        if p.is_symlink():
            raise UnsafeArchiveError(f"{src}: {p.relative_to(src)} is a symbolic link; refusing to copy it.")
    total = sum(p.stat().st_size for p in files)
    if total > limits.max_bytes:
        raise UnsafeArchiveError(f"{src}: holds {total} bytes, over the limit of {limits.max_bytes}.")
    for p in files:
        target = out / p.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, target)


def content_key(archive: str | Path) -> str:
    """A short hash of an archive's bytes (of a folder's file names, sizes and bytes): the key of
    an extraction cache, so an unchanged archive is extracted once."""
    path = Path(archive)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        # Names and sizes too: two folders with the same bytes under other names differ.
        rel = f.relative_to(path).as_posix() if path.is_dir() else ""
        digest.update(f"{rel}\0{f.stat().st_size}\0".encode())
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def extract_cached(archive: str | Path, cache: Path, *, limits: Limits | None = None) -> Path:
    """Extract into ``cache/<content_key>`` unless that is already there; return the folder."""
    target = cache / content_key(archive)
    if not target.exists():
        extract_archive(archive, target, limits=limits)
    return target


def model_root(folder: Path) -> Path:
    """The folder holding MAR-INF in an extracted model: ``folder`` itself, or (where TorchServe looks
    next) the first folder inside it that has one."""
    if (folder / MANIFEST_PATH).is_file():
        return folder
    inner = sorted(p for p in folder.iterdir() if p.is_dir() and (p / MANIFEST_PATH).is_file())
    return inner[0] if inner else folder
