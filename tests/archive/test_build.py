from __future__ import annotations

import json
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from ts_notebook.archive import ArchiveSpec, build_archive, open_archive, plan_archive, write_plan
from ts_notebook.errors import ArchiveError

FULL_FILES = {
    "model.py",
    "tiny_state.pth",
    "handler.py",
    "index_to_name.json",
    "notes.txt",
    "a.txt",
    "sub/b.txt",
    ".hidden_file",
    "requirements.txt",
    "model-config.yaml",
}


def full_build(assets: Path, out: Path, fmt: str = "default", name: str = "tiny_eager", **kw: object):  # type: ignore[no-untyped-def]
    return build_archive(
        name,
        "1.0",
        str(assets / "handler.py"),
        model_file=str(assets / "model.py"),
        serialized_file=str(assets / "tiny_state.pth"),
        extra_files=f"{assets}/index_to_name.json,{assets}/notes.txt,{assets}/extra_dir",
        config_file=str(assets / "model-config.yaml"),
        requirements_file=str(assets / "requirements.txt"),
        export_path=out,
        archive_format=fmt,
        **kw,
    )


def test_default_build_matches_reference_layout(assets: Path, tmp_path: Path) -> None:
    info = full_build(assets, tmp_path)
    assert info.path == tmp_path / "tiny_eager.mar"
    with zipfile.ZipFile(info.path) as zf:
        names = zf.namelist()
        assert names[-1] == "MAR-INF/MANIFEST.json"  # written last, as the reference does
        assert set(names[:-1]) == FULL_FILES
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in zf.infolist())
        assert not any(i.is_dir() for i in zf.infolist())
        assert zf.testzip() is None
        manifest = json.loads(zf.read("MAR-INF/MANIFEST.json"))
    assert manifest["model"] == {
        "modelName": "tiny_eager",
        "serializedFile": "tiny_state.pth",
        "handler": "handler.py",
        "modelFile": "model.py",
        "modelVersion": "1.0",
        "requirementsFile": "requirements.txt",
        "configFile": "model-config.yaml",
    }
    assert list(manifest) == ["createdOn", "runtime", "model", "archiverVersion"]


@pytest.mark.parametrize("fmt", ["default", "zip-store", "tgz", "no-archive"])
def test_every_format_round_trips(assets: Path, tmp_path: Path, fmt: str) -> None:
    info = full_build(assets, tmp_path, fmt)
    suffix = {"default": ".mar", "zip-store": ".mar", "tgz": ".tar.gz", "no-archive": ""}[fmt]
    assert info.path.name == f"tiny_eager{suffix}"
    again = open_archive(info.path)
    assert again.format == fmt
    assert set(again.names) == FULL_FILES
    assert again.manifest == info.manifest
    assert again.manifest.model_name == "tiny_eager"
    sizes = {f.name: f.size for f in again.files}
    assert sizes["tiny_state.pth"] == (assets / "tiny_state.pth").stat().st_size


def test_tgz_puts_everything_under_the_model_name(assets: Path, tmp_path: Path) -> None:
    info = full_build(assets, tmp_path, "tgz")
    with tarfile.open(info.path) as tar:
        names = tar.getnames()
    assert names[-1] == "tiny_eager/MAR-INF/MANIFEST.json"
    assert all(n.startswith("tiny_eager/") for n in names)


def test_zip_store_stores_every_member(assets: Path, tmp_path: Path) -> None:
    info = full_build(assets, tmp_path, "zip-store")
    with zipfile.ZipFile(info.path) as zf:
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}


def test_extra_files_are_flattened_like_the_reference(assets: Path, tmp_path: Path) -> None:
    info = build_archive(
        "nested",
        "1.0",
        str(assets / "func_handler.py"),
        extra_files=f"{assets}/extra_dir/sub/b.txt,{assets}/*.json",
        export_path=tmp_path,
    )
    assert set(info.names) == {"b.txt", "index_to_name.json", "func_handler.py"}


def test_extra_dir_skips_pycache_and_dot_dirs_but_keeps_dot_files(assets: Path, tmp_path: Path) -> None:
    info = build_archive(
        "d", "1", str(assets / "func_handler.py"), extra_files=str(assets / "extra_dir"), export_path=tmp_path
    )
    assert set(info.names) == {"func_handler.py", "a.txt", "sub/b.txt", ".hidden_file"}


def test_wildcard_matching_nothing_is_a_warning(assets: Path, tmp_path: Path) -> None:
    info = build_archive(
        "w", "1", str(assets / "func_handler.py"), extra_files=f"{assets}/*.nothing", export_path=tmp_path
    )
    assert info.warnings == (f"--extra-files pattern '{assets}/*.nothing' matched no file; nothing added for it.",)


@pytest.mark.parametrize(
    ("spec", "manifest_handler", "copied"),
    [
        ("handler.py", "handler.py", "handler.py"),
        ("func_handler:my_entry", "func_handler:my_entry", "func_handler.py"),
        ("func_handler.py:my_entry", "func_handler:my_entry", "func_handler.py"),  # the reference fails on this one
        ("func_handler", "func_handler", "func_handler.py"),
        ("image_classifier", "image_classifier", None),
        ("base_handler", "base_handler", None),
    ],
)
def test_handler_forms(assets: Path, in_tmp: Path, spec: str, manifest_handler: str, copied: str | None) -> None:
    for f in ("handler.py", "func_handler.py"):
        shutil.copy(assets / f, in_tmp / f)
    out = in_tmp / "out"
    out.mkdir()
    info = build_archive("h", "1", spec, serialized_file=str(assets / "tiny_ts.pt"), export_path=out)
    assert info.manifest.handler == manifest_handler
    assert set(info.names) == {"tiny_ts.pt"} | ({copied} if copied else set())


def test_handler_given_by_absolute_path_to_module_and_function(assets: Path, tmp_path: Path) -> None:
    info = build_archive("h", "1", f"{assets}/func_handler:my_entry", export_path=tmp_path)
    assert info.manifest.handler == "func_handler:my_entry"


def test_model_path_packs_a_folder_with_mms_exclusions(assets: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mms_model"
    shutil.copytree(assets / "extra_dir", folder)
    shutil.copy(assets / "func_handler.py", folder)
    (folder / "MANIFEST.json").write_text("{}")
    (folder / ".DS_Store").write_bytes(b"x")
    (folder / "old.mar").write_bytes(b"x")
    (folder / "__MACOSX").mkdir()
    (folder / "__MACOSX" / "junk").write_text("x")
    (folder / "sub" / "c.pyc").write_bytes(b"x")
    out = tmp_path / "out"
    out.mkdir()
    info = build_archive("mms", "1", "func_handler:handle", model_path=folder, export_path=out)
    assert set(info.names) == {"a.txt", "sub/b.txt", "func_handler.py"}
    assert info.manifest.handler == "func_handler:handle"


def test_non_python_model_file_is_packaged_as_is(assets: Path, tmp_path: Path) -> None:
    """A popular tutorial passes pytorch_model.bin as --model-file; that keeps working."""
    weights = tmp_path / "pytorch_model.bin"
    weights.write_bytes(b"\x80\x02weights")
    info = build_archive("hf", "1", str(assets / "func_handler.py"), model_file=str(weights), export_path=tmp_path)
    assert info.manifest.model_file == "pytorch_model.bin"
    assert "pytorch_model.bin" in info.names


def test_force_overwrites_and_no_temporary_files_remain(assets: Path, tmp_path: Path) -> None:
    full_build(assets, tmp_path)
    info = full_build(assets, tmp_path, force=True)
    assert sorted(os.listdir(tmp_path)) == ["tiny_eager.mar"]
    assert info.path.stat().st_size > 0


def test_force_replaces_a_no_archive_folder(assets: Path, tmp_path: Path) -> None:
    full_build(assets, tmp_path, "no-archive")
    (tmp_path / "tiny_eager" / "stale.txt").write_text("from an old build")
    full_build(assets, tmp_path, "no-archive", force=True)
    assert not (tmp_path / "tiny_eager" / "stale.txt").exists()
    assert sorted(os.listdir(tmp_path)) == ["tiny_eager"]


def test_failed_write_leaves_nothing_behind(assets: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(assets, src, ignore=shutil.ignore_patterns("extra_dir"))
    out = tmp_path / "out"
    out.mkdir()
    plan = plan_archive(
        ArchiveSpec("gone", "1", str(src / "handler.py"), serialized_file=str(src / "tiny_state.pth"), export_path=out)
    )
    (src / "tiny_state.pth").unlink()  # the weights vanish between the checks and the write
    with pytest.raises(ArchiveError, match=r"could not write .*gone\.mar.*Nothing was written"):
        write_plan(plan)
    assert os.listdir(out) == []


def test_big_weights_are_deflated_in_parallel_and_read_back_exactly(tmp_path: Path, assets: Path) -> None:
    import torch

    weights = tmp_path / "big.pth"
    torch.save({"w": torch.randn(3_000_000)}, weights)  # ~12 MB of float32: several 4 MiB pieces
    noise = tmp_path / "noise.bin"
    noise.write_bytes(os.urandom(3 << 20))
    info = build_archive(
        "big",
        "1",
        str(assets / "func_handler.py"),
        serialized_file=str(weights),
        extra_files=str(noise),
        export_path=tmp_path,
    )
    stored = {f.name: f for f in info.files}
    assert stored["big.pth"].compression == "deflate"
    assert stored["big.pth"].compressed_size is not None
    assert stored["big.pth"].compressed_size < 0.95 * weights.stat().st_size  # floats deflate ~7.5 %
    assert stored["noise.bin"].compression == "stored"  # random bytes are not worth deflating
    with zipfile.ZipFile(info.path) as zf:
        assert zf.testzip() is None
        assert zf.read("big.pth") == weights.read_bytes()
        assert zf.read("noise.bin") == noise.read_bytes()


def test_progress_reports_every_byte(assets: Path, tmp_path: Path) -> None:
    seen: list[int] = []
    plan = plan_archive(
        ArchiveSpec(
            "p", "1", str(assets / "handler.py"), serialized_file=str(assets / "tiny_state.pth"), export_path=tmp_path
        )
    )
    write_plan(plan, seen.append)
    assert sum(seen) == plan.total_bytes


def test_the_archive_is_never_packed_into_itself(assets: Path, in_tmp: Path) -> None:
    shutil.copy(assets / "func_handler.py", in_tmp)
    build_archive("self", "1", "func_handler.py", extra_files=".")
    info = build_archive("self", "1", "func_handler.py", extra_files=".", force=True)
    assert set(info.names) == {"func_handler.py"}


def test_tgz_packs_symlinked_inputs_as_files(assets: Path, tmp_path: Path) -> None:
    """Hugging Face caches hand out symlinks to blobs; the archive must hold the bytes."""
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    (blobs / "abc").write_bytes(b"weights")
    (tmp_path / "snap").mkdir()
    (tmp_path / "snap" / "weights.pt").symlink_to("../blobs/abc")
    out = tmp_path / "out"
    out.mkdir()
    info = build_archive(
        "m",
        "1",
        str(assets / "func_handler.py"),
        serialized_file=str(tmp_path / "snap" / "weights.pt"),
        export_path=out,
        archive_format="tgz",
    )
    with tarfile.open(info.path) as tar:
        member = tar.getmember("m/weights.pt")
        assert member.isfile() and tar.extractfile(member).read() == b"weights"  # type: ignore[union-attr]


def test_overlong_model_name_is_refused_before_touching_the_disk(assets: Path, tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="is 300 characters; keep it to 200 or fewer"):
        build_archive("m" * 300, "1", str(assets / "func_handler.py"), export_path=tmp_path)
    assert os.listdir(tmp_path) == []
