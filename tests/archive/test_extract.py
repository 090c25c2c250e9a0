from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from ts_notebook.archive import Limits, build_archive, extract_archive
from ts_notebook.errors import ArchiveError, UnsafeArchiveError


def zip_with(path: Path, members: dict[str, bytes], *, link: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if link:
            info = zipfile.ZipInfo(link)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


def tar_with(path: Path, add: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info in add:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return path


@pytest.mark.parametrize("fmt", ["default", "zip-store", "tgz", "no-archive"])
def test_extracts_every_format_to_the_model_dir_layout(assets: Path, tmp_path: Path, fmt: str) -> None:
    info = build_archive(
        "x",
        "1",
        str(assets / "handler.py"),
        serialized_file=str(assets / "tiny_state.pth"),
        extra_files=str(assets / "extra_dir"),
        export_path=tmp_path,
        archive_format=fmt,
    )
    out = extract_archive(info.path, tmp_path / "model")
    got = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert got == sorted(
        ["MAR-INF/MANIFEST.json", "handler.py", "tiny_state.pth", "a.txt", "sub/b.txt", ".hidden_file"]
    )
    assert (out / "tiny_state.pth").read_bytes() == (assets / "tiny_state.pth").read_bytes()


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("/etc/evil", "has an absolute path"), ("../evil", "climbs out of the target"), ("a/../../evil", "climbs out")],
)
def test_zip_members_escaping_the_target_are_refused(tmp_path: Path, name: str, fragment: str) -> None:
    archive = zip_with(tmp_path / "bad.mar", {"ok.txt": b"fine", name: b"evil"})
    with pytest.raises(UnsafeArchiveError, match=fragment):
        extract_archive(archive, tmp_path / "out" / "model")
    assert not (tmp_path / "out" / "model").exists()
    assert not (tmp_path / "evil").exists() and not (tmp_path / "out" / "evil").exists()


def test_zip_symlink_is_refused(tmp_path: Path) -> None:
    archive = zip_with(tmp_path / "link.mar", {"ok.txt": b"fine"}, link="passwd")
    with pytest.raises(UnsafeArchiveError, match="'passwd' is a symbolic link"):
        extract_archive(archive, tmp_path / "model")
    assert not (tmp_path / "model").exists()


def test_tar_links_and_escapes_are_refused(tmp_path: Path) -> None:
    link = tarfile.TarInfo("m/evil")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    with pytest.raises(UnsafeArchiveError, match="'m/evil' is a link"):
        extract_archive(tar_with(tmp_path / "l.tar.gz", [link]), tmp_path / "a")
    up = tarfile.TarInfo("../../up.txt")
    up.size = 1
    with pytest.raises(UnsafeArchiveError, match="climbs out"):
        extract_archive(tar_with(tmp_path / "u.tar.gz", [up]), tmp_path / "b")
    assert sorted(os.listdir(tmp_path)) == ["l.tar.gz", "u.tar.gz"]


def test_high_compression_ratio_is_refused_as_a_bomb(tmp_path: Path) -> None:
    archive = zip_with(tmp_path / "bomb.mar", {"zeros.bin": bytes(80 << 20)})  # 80 MiB of zeros -> ~80 KiB
    with pytest.raises(UnsafeArchiveError, match=r"expands \d+x .* marks a decompression bomb"):
        extract_archive(archive, tmp_path / "model")
    assert not (tmp_path / "model").exists()
    # A user who trusts it can raise the limit.
    out = extract_archive(archive, tmp_path / "model", limits=Limits(max_ratio=10_000))
    assert (out / "zeros.bin").stat().st_size == 80 << 20


def test_total_size_limit(tmp_path: Path) -> None:
    archive = zip_with(tmp_path / "big.mar", {"a.bin": os.urandom(4096)})
    with pytest.raises(UnsafeArchiveError, match="would expand to 4096 bytes, over the limit of 1000"):
        extract_archive(archive, tmp_path / "model", limits=Limits(max_bytes=1000))


def test_overlapping_zip_members_are_refused(tmp_path: Path) -> None:
    """The non-recursive zip bomb: many central-directory entries pointing at one compressed blob."""
    path = zip_with(tmp_path / "overlap.mar", {"a.bin": b"A" * 1000})
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.infolist()[0]
    cd_start = data.find(b"PK\x01\x02")
    eocd = data.find(b"PK\x05\x06")
    entry = bytes(data[cd_start:eocd])
    second = entry.replace(b"a.bin", b"b.bin")
    eocd_rec = bytearray(data[eocd:])
    eocd_rec[8:10] = (2).to_bytes(2, "little")
    eocd_rec[10:12] = (2).to_bytes(2, "little")
    eocd_rec[12:16] = (len(entry) * 2).to_bytes(4, "little")
    path.write_bytes(bytes(data[:eocd]) + second + bytes(eocd_rec))
    assert info.header_offset == 0
    with pytest.raises(UnsafeArchiveError, match="'a.bin' and 'b.bin' overlap"):
        extract_archive(path, tmp_path / "model")


def test_target_must_be_new_or_empty(assets: Path, tmp_path: Path) -> None:
    info = build_archive("x", "1", str(assets / "func_handler.py"), export_path=tmp_path)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(ArchiveError, match="already exists and is not an empty folder"):
        extract_archive(info.path, busy)
    assert os.listdir(busy) == ["keep.txt"]
