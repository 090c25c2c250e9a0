"""Open an archive of any format and describe it: ``.mar`` zip, ``.tar.gz`` or a ``no-archive``
folder, with a current, legacy or missing manifest.
"""

from __future__ import annotations

import html
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ts_notebook.archive.manifest import MANIFEST_PATH, Manifest, missing_manifest, parse_manifest
from ts_notebook.errors import ArchiveError

FORMATS = ("default", "tgz", "no-archive", "zip-store")
MAX_MANIFEST_BYTES = 1 << 20  # real manifests are a few hundred bytes; a huge one is an attack
MAX_SOURCE_BYTES = 16 << 20  # what diagnose() reads whole: handler, model file, config


@dataclass(frozen=True)
class ArchiveFile:
    """One member: its name inside the model folder, its size, and how it is stored."""

    name: str
    size: int
    compressed_size: int | None = None
    compression: str = "none"


@dataclass(frozen=True)
class ArchiveInfo:
    """What an archive holds. It is the value of ``%mar_build`` and ``%mar_inspect``."""

    path: Path
    format: str
    manifest: Manifest
    files: tuple[ArchiveFile, ...]
    warnings: tuple[str, ...] = field(default=())

    @property
    def size(self) -> int:
        """Bytes on disk: the archive file, or the sum of a folder's files."""
        if self.path.is_dir():
            return sum(f.size for f in self.files)
        return self.path.stat().st_size

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.files]

    def __repr__(self) -> str:
        return self.to_text()

    def to_text(self) -> str:
        """A plain table for terminals and nbval."""
        m = self.manifest
        lines = [
            f"{self.path}  ({self.format}, {_human(self.size)})",
            f"model {m.model_name} version {m.model_version or '-'}  handler {m.handler or '-'}  "
            f"runtime {m.runtime}  manifest {m.source}",
        ]
        width = max([len(f.name) for f in self.files] + [4])
        lines.append(f"{'file':<{width}}  {'size':>10}  stored")
        for f in self.files:
            stored = f.compression if f.compressed_size is None else f"{f.compression} {_human(f.compressed_size)}"
            lines.append(f"{f.name:<{width}}  {_human(f.size):>10}  {stored}")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        m = self.manifest
        rows = "".join(
            f"<tr><td><code>{html.escape(f.name)}</code></td><td style='text-align:right'>{_human(f.size)}</td>"
            f"<td>{html.escape(f.compression)}</td></tr>"
            for f in self.files
        )
        manifest = html.escape(m.to_json())
        warn = "".join(f"<p style='color:#a60'>warning: {html.escape(w)}</p>" for w in self.warnings)
        return (
            f"<div class='tsn-archive'><b>{html.escape(str(self.path))}</b> "
            f"({self.format}, {_human(self.size)})"
            f"<table><thead><tr><th>file</th><th>size</th><th>stored</th></tr></thead><tbody>{rows}</tbody></table>"
            f"<details><summary>MANIFEST.json ({m.source})</summary><pre>{manifest}</pre></details>{warn}</div>"
        )


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def open_archive(path: str | Path, warnings: tuple[str, ...] = ()) -> ArchiveInfo:
    """Describe the archive at ``path`` without extracting it.

    Raises:
        ArchiveError: the path does not exist, is not a zip, tar.gz or folder, or its manifest is broken.
    """
    p = Path(path)
    if p.is_dir():
        return _open_folder(p, warnings)
    if not p.is_file():
        raise ArchiveError(f"{p}: no such archive. Pass the path of a .mar, .tar.gz or model folder.")
    if zipfile.is_zipfile(p):
        return _open_zip(p, warnings)
    if _is_tar(p):
        return _open_tar(p, warnings)
    raise _not_an_archive(p)


def _is_tar(p: Path) -> bool:
    try:
        return tarfile.is_tarfile(p)
    except (OSError, tarfile.TarError):
        return False


def _stem(p: Path) -> str:
    name = p.name
    for suffix in (".tar.gz", ".tgz", ".mar", ".zip"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _not_an_archive(p: Path) -> ArchiveError:
    return ArchiveError(
        f"{p}: not a model archive (neither a zip .mar, a .tar.gz nor a folder). A .pt file is a "
        "model, not an archive: package it with %mar_build --serialized-file."
    )


def _is_torch_file(names: list[str]) -> bool:
    """torch.save and TorchScript files are zips too: one top folder holding data.pkl or constants.pkl."""
    return bool(tar_prefix(names)) and any(n.endswith(("/data.pkl", "/constants.pkl")) for n in names)


def _open_zip(p: Path, warnings: tuple[str, ...]) -> ArchiveInfo:
    with zipfile.ZipFile(p) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        info = zf.NameToInfo.get(MANIFEST_PATH)
        manifest = None
        if info is not None:
            _check_size(p, MANIFEST_PATH, info.file_size, MAX_MANIFEST_BYTES)
            manifest = parse_manifest(zf.read(info), str(p))
    if manifest is None and _is_torch_file([i.filename for i in infos]):
        raise _not_an_archive(p)
    files = tuple(
        ArchiveFile(
            i.filename, i.file_size, i.compress_size, "deflate" if i.compress_type == zipfile.ZIP_DEFLATED else "stored"
        )
        for i in infos
        if i.filename != MANIFEST_PATH
    )
    fmt = "default" if any(f.compression == "deflate" for f in files) or not files else "zip-store"
    return ArchiveInfo(p, fmt, manifest or missing_manifest(_stem(p)), files, warnings)


def tar_prefix(names: list[str]) -> str:
    """The top folder every member sits under (torch-model-archiver's tgz layout), or ''."""
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1 and all("/" in n for n in names):
        return tops.pop() + "/"
    return ""


def _open_tar(p: Path, warnings: tuple[str, ...]) -> ArchiveInfo:
    with tarfile.open(p) as tar:
        members = [m for m in tar.getmembers() if not m.isdir()]
        prefix = tar_prefix([m.name for m in members])
        manifest = None
        for m in members:
            if m.name == prefix + MANIFEST_PATH and m.isfile():
                _check_size(p, MANIFEST_PATH, m.size, MAX_MANIFEST_BYTES)
                fh = tar.extractfile(m)
                manifest = parse_manifest(fh.read() if fh else b"", str(p))
    files = tuple(
        ArchiveFile(m.name[len(prefix) :], m.size, None, "gzip") for m in members if m.name != prefix + MANIFEST_PATH
    )
    return ArchiveInfo(p, "tgz", manifest or missing_manifest(_stem(p)), files, warnings)


def _open_folder(p: Path, warnings: tuple[str, ...]) -> ArchiveInfo:
    manifest_file = p / MANIFEST_PATH
    manifest = None
    if manifest_file.is_file():
        _check_size(p, MANIFEST_PATH, manifest_file.stat().st_size, MAX_MANIFEST_BYTES)
        manifest = parse_manifest(manifest_file.read_bytes(), str(p))
    files = tuple(
        ArchiveFile(f.relative_to(p).as_posix(), f.stat().st_size)
        for f in sorted(p.rglob("*"))
        if f.is_file() and f != manifest_file
    )
    return ArchiveInfo(p, "no-archive", manifest or missing_manifest(p.name), files, warnings)


def _check_size(archive: Path, name: str, size: int, limit: int) -> None:
    if size > limit:
        raise ArchiveError(
            f"{archive}: {name} is {size} bytes, over the {limit} bytes such a file can sensibly be; refusing to "
            "read it (a malformed or malicious archive)."
        )


def read_member(info: ArchiveInfo, name: str, max_bytes: int = MAX_SOURCE_BYTES) -> bytes | None:
    """The bytes of one member (by its name in the model folder), or None if it is not there.

    Raises:
        ArchiveError: the member is bigger than ``max_bytes``.
    """
    member = next((f for f in info.files if f.name == name), None)
    if member is None:
        return None
    _check_size(info.path, name, member.size, max_bytes)
    if info.format == "no-archive":
        return (info.path / name).read_bytes()
    if info.format == "tgz":
        with tarfile.open(info.path) as tar:
            prefix = tar_prefix([m.name for m in tar.getmembers() if not m.isdir()])
            fh = tar.extractfile(prefix + name)
            return fh.read() if fh else None
    with zipfile.ZipFile(info.path) as zf:
        return zf.read(name)
