"""Write a layout as a zip ``.mar``, a ``.tar.gz`` or a plain folder.

The ``default`` format must stay a standard deflated zip that TorchServe's Java side reads, but
deflating float weights with zlib's default level costs ~30 MB/s for ~7 % saving. Big members are
compressed instead in independent 4 MiB pieces on all cores with a fast deflate (ISA-L level 1
when ``isal`` is installed; it gets the same ratio on weights at ~15x the speed); pieces end on a
byte-aligned sync flush, so their concatenation is one valid deflate stream (the trick pigz uses).
Members that do not compress at all are stored.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import zipfile
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

from ts_notebook.archive.manifest import MANIFEST_PATH

_fast_zlib: ModuleType
try:  # ISA-L: same deflate format, several times faster; zlib when the wheel is missing.
    from isal import isal_zlib as _fast_zlib
except ImportError:  # pragma: no cover - isal is a dependency; this guards odd platforms
    _fast_zlib = zlib

Progress = Callable[[int], None]

BIG_MEMBER = 1 << 20  # below this, zipfile's own deflate (level 6, like the reference) is quick enough
PIECE = 4 << 20
READ_BLOCK = 16 << 20
SAMPLE = 256 << 10
STORE_RATIO = 0.985  # a sample that deflates to more than this is stored


def _deflate_piece(data: bytes | memoryview, final: bool) -> bytes:
    comp = _fast_zlib.compressobj(1, zlib.DEFLATED, -15)
    return bytes(comp.compress(data)) + bytes(comp.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH))


class _ParallelDeflater:
    """A zipfile compressor (``compress``/``flush``) that deflates pieces on a thread pool.

    Output comes back in order; at most ``2 * threads`` pieces are in flight, so memory stays
    bounded whatever the member size.
    """

    def __init__(self, pool: ThreadPoolExecutor, threads: int) -> None:
        self._pool = pool
        self._max_pending = 2 * threads
        self._pending: deque[Future[bytes]] = deque()

    def compress(self, data: bytes | memoryview) -> bytes:
        view = memoryview(data)
        for start in range(0, len(view), PIECE):
            self._pending.append(self._pool.submit(_deflate_piece, view[start : start + PIECE], False))
        out = bytearray()
        while self._pending and (len(self._pending) > self._max_pending or self._pending[0].done()):
            out += self._pending.popleft().result()
        return bytes(out)

    def flush(self) -> bytes:
        out = bytearray()
        while self._pending:
            out += self._pending.popleft().result()
        out += _deflate_piece(b"", True)  # an empty final block closes the stream
        return bytes(out)


def _compresses(path: Path, size: int) -> bool:
    """Deflate a few samples spread over the file; False when it would not get smaller."""
    raw = packed = 0
    with open(path, "rb") as fh:
        for i in range(4):
            fh.seek(max(0, (size - SAMPLE) * i // 3))
            chunk = fh.read(SAMPLE)
            raw += len(chunk)
            packed += len(_deflate_piece(chunk, True))
    return raw == 0 or packed < raw * STORE_RATIO


class ZipMarWriter:
    """Writes members into an open zip, choosing per member how to compress."""

    def __init__(self, zf: zipfile.ZipFile, store: bool, progress: Progress | None) -> None:
        self._zf = zf
        self._store = store
        self._progress = progress
        self._threads = max(1, os.cpu_count() or 1)
        self._pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> ZipMarWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def add(self, arcname: str, source: Path) -> None:
        info = zipfile.ZipInfo.from_file(source, arcname)
        size = info.file_size
        if self._store or size < BIG_MEMBER:
            info.compress_type = zipfile.ZIP_STORED if self._store else zipfile.ZIP_DEFLATED
            with open(source, "rb") as src, self._zf.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, READ_BLOCK)
            self._tick(size)
            return
        deflate = _compresses(source, size)
        info.compress_type = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
        with open(source, "rb") as src, self._zf.open(info, "w") as dst:
            if deflate:
                self._use_parallel_deflate(dst)
            while block := src.read(READ_BLOCK):
                dst.write(block)
                self._tick(len(block))

    def _use_parallel_deflate(self, member: Any) -> None:
        # zipfile's writer hands every block to its `_compressor` after computing the CRC and size
        # of the raw data; swapping in ours keeps zipfile in charge of headers, CRC and ZIP64.
        if getattr(member, "_compressor", None) is None:  # pragma: no cover - other Python internals
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="ts_notebook-deflate")
        member._compressor = _ParallelDeflater(self._pool, self._threads)

    def add_manifest(self, text: str) -> None:
        # writestr's defaults (mode 0o600, now) are what the reference archive has.
        self._zf.writestr(
            MANIFEST_PATH, text, compress_type=zipfile.ZIP_STORED if self._store else zipfile.ZIP_DEFLATED
        )

    def _tick(self, n: int) -> None:
        if self._progress is not None:
            self._progress(n)


def write_zip(target: Path, layout: dict[str, Path], manifest: str, *, store: bool, progress: Progress | None) -> None:
    """Write a ``default`` (``store=False``) or ``zip-store`` archive to ``target``."""
    with zipfile.ZipFile(target, "w") as zf, ZipMarWriter(zf, store, progress) as writer:
        for arcname, source in layout.items():
            writer.add(arcname, source)
        writer.add_manifest(manifest)


class _Counting(io.RawIOBase):
    """A read-only file wrapper that reports progress as tarfile reads it."""

    def __init__(self, fh: io.BufferedReader, progress: Progress | None) -> None:
        self._fh = fh
        self._progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._fh.readinto(buffer)
        if self._progress is not None and n:
            self._progress(n)
        return n


def write_tgz(target: Path, prefix: str, layout: dict[str, Path], manifest: str, progress: Progress | None) -> None:
    """Write a ``tgz`` archive: every member under ``<prefix>/``, manifest last, as the reference."""
    try:
        from isal import igzip  # level 1 keeps weights ~8 % smaller at a fraction of gzip -6's time

        raw: Any = igzip.open(target, "wb", compresslevel=1)  # type: ignore[no-untyped-call]
    except ImportError:  # pragma: no cover
        import gzip

        raw = gzip.open(target, "wb", compresslevel=6)  # noqa: SIM115 - closed by the `with` below
    with raw, tarfile.open(fileobj=raw, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        for arcname, source in layout.items():
            with open(source, "rb") as fh:
                # From the open file (fstat): a symlinked input is packed as the file it points to.
                info = tar.gettarinfo(arcname=f"{prefix}/{arcname}", fileobj=fh)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, _Counting(fh, progress))
        data = manifest.encode("utf-8")
        info = tarfile.TarInfo(f"{prefix}/{MANIFEST_PATH}")
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))


def write_folder(target: Path, layout: dict[str, Path], manifest: str, progress: Progress | None) -> None:
    """Write a ``no-archive`` folder: the files plus ``MAR-INF/MANIFEST.json``."""
    target.mkdir()
    for arcname, source in layout.items():
        dest = target / arcname
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest)
        if progress is not None:
            progress(dest.stat().st_size)
    (target / "MAR-INF").mkdir(exist_ok=True)
    (target / MANIFEST_PATH).write_text(manifest, encoding="utf-8")
