"""Each bad input gets a message naming the value and the fix, and nothing is written."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ts_notebook.archive import build_archive
from ts_notebook.errors import ArchiveError


def fails(out: Path, *args: str, **kw: object) -> str:
    before = sorted(os.listdir(out))
    with pytest.raises(ArchiveError) as err:
        build_archive(*args, export_path=kw.pop("export_path", out), **kw)  # type: ignore[arg-type]
    assert sorted(os.listdir(out)) == before, "a failed build must leave nothing behind"
    return str(err.value)


@pytest.mark.parametrize(("name", "fix"), [("bad name", "bad_name"), ("a/b", "a_b"), ("_x", "x")])
def test_model_name_rule(assets: Path, tmp_path: Path, name: str, fix: str) -> None:
    msg = fails(tmp_path, name, "1", str(assets / "func_handler.py"))
    assert msg == (
        f"model name {name!r} is not allowed: it must match ^[A-Za-z0-9][A-Za-z0-9_\\-.]*$ (start with a letter "
        f"or digit; then only letters, digits, '_', '-' and '.'). Try --model-name {fix}."
    )


def test_missing_serialized_file(assets: Path, in_tmp: Path) -> None:
    msg = fails(in_tmp, "m", "1", str(assets / "func_handler.py"), serialized_file="does_not_exist.pt")
    assert (
        msg
        == f"--serialized-file 'does_not_exist.pt' does not exist (looked from {in_tmp}). Fix the path and build again."
    )


@pytest.mark.parametrize("flag", ["model_file", "requirements_file", "config_file"])
def test_missing_other_files(assets: Path, in_tmp: Path, flag: str) -> None:
    msg = fails(in_tmp, "m", "1", str(assets / "func_handler.py"), **{flag: "nope.txt"})
    assert "'nope.txt' does not exist" in msg


def test_missing_extra_file(assets: Path, in_tmp: Path) -> None:
    msg = fails(in_tmp, "m", "1", str(assets / "func_handler.py"), extra_files="index.json,nope.txt")
    assert msg.startswith("--extra-files: 'index.json' does not exist")


def test_existing_archive_needs_force(assets: Path, tmp_path: Path) -> None:
    build_archive("m", "1", str(assets / "func_handler.py"), export_path=tmp_path)
    msg = fails(tmp_path, "m", "1", str(assets / "func_handler.py"))
    assert (
        msg == f"{tmp_path}/m.mar already exists. Pass -f/--force to overwrite it, "
        "or choose another --model-name or --export-path."
    )


def test_export_path_that_is_a_file(assets: Path, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ArchiveError) as err:
        build_archive("m", "1", str(assets / "func_handler.py"), export_path=tmp_path / "afile")
    assert (
        str(err.value)
        == f"--export-path {tmp_path}/afile is a file, not a folder: point it to a folder for the archive."
    )


def test_a_missing_export_path_is_created_with_a_warning(assets: Path, tmp_path: Path) -> None:
    out = tmp_path / "new" / "dir"
    info = build_archive("m", "1", str(assets / "func_handler.py"), export_path=out)
    assert info.path == out / "m.mar" and info.path.is_file()
    assert f"--export-path {out} does not exist: it is created for this archive" in info.warnings


def test_a_failed_write_removes_the_export_path_it_made(assets: Path, tmp_path: Path) -> None:
    from ts_notebook.archive import ArchiveSpec, plan_archive, write_plan

    weights = tmp_path / "w.pth"
    shutil.copy(assets / "tiny_state.pth", weights)
    plan = plan_archive(
        ArchiveSpec(
            "m", "1", str(assets / "handler.py"), serialized_file=str(weights), export_path=tmp_path / "a" / "b"
        )
    )
    weights.unlink()  # gone between the checks and the write
    with pytest.raises(ArchiveError, match="Nothing was written"):
        write_plan(plan)
    assert not (tmp_path / "a").exists()


def test_version_is_required(assets: Path, tmp_path: Path) -> None:
    assert "--version is required" in fails(tmp_path, "m", "", str(assets / "func_handler.py"))


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("import torch\nclass A(torch.nn.Module): pass\nclass B(torch.nn.Module): pass\n", "defines 2 classes (A, B)"),
        ("import torch\n", "defines 0 classes (none)"),
        ("class Plain:\n    pass\n", "class Plain does not subclass torch.nn.Module"),
        ("class Broken(\n", "line 1: '(' was never closed"),
    ],
)
def test_python_model_file_must_define_one_module_class(
    assets: Path, tmp_path: Path, source: str, fragment: str
) -> None:
    (tmp_path / "model.py").write_text(source)
    out = tmp_path / "out"
    out.mkdir()
    msg = fails(out, "m", "1", str(assets / "func_handler.py"), model_file=str(tmp_path / "model.py"))
    assert fragment in msg


@pytest.mark.parametrize(
    ("yaml_text", "fragment"),
    [
        ("maxBatchDelays: 100\n", "unknown key 'maxBatchDelays'; did you mean 'maxBatchDelay'?"),
        ("minWorkers: [1\n", "line 2: not valid YAML"),
        ("minWorkers: one\n", "minWorkers must be a int, got 'one'"),
        ("my_threshold: 0.5\n", "unknown key 'my_threshold', which TorchServe ignores"),
        ("- a\n- b\n", "expected a mapping of keys"),
        ("!!python/object:os.system ls\n", "not valid YAML"),
    ],
)
def test_config_file_is_checked(assets: Path, tmp_path: Path, yaml_text: str, fragment: str) -> None:
    cfg = tmp_path / "model-config.yaml"
    cfg.write_text(yaml_text)
    out = tmp_path / "out"
    out.mkdir()
    assert fragment in fails(out, "m", "1", str(assets / "func_handler.py"), config_file=str(cfg))


def test_config_sections_for_the_handler_are_allowed(assets: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "model-config.yaml"
    cfg.write_text("minWorkers: 1\nhandler:\n  threshold: 0.5\nmy_section:\n  k: v\n")
    info = build_archive("m", "1", str(assets / "func_handler.py"), config_file=str(cfg), export_path=tmp_path)
    assert info.manifest.config_file == "model-config.yaml"


def test_unknown_handler_suggests_a_builtin(tmp_path: Path, in_tmp: Path) -> None:
    msg = fails(in_tmp, "m", "1", "image_clasifier")
    assert msg.startswith("--handler 'image_clasifier': no file 'image_clasifier.py'")
    assert "Did you mean the built-in handler 'image_classifier'?" in msg


def test_handler_with_two_classes_and_no_handle(tmp_path: Path, in_tmp: Path) -> None:
    (in_tmp / "two.py").write_text("class A:\n    pass\n\n\nclass B:\n    pass\n")
    msg = fails(in_tmp, "m", "1", "two.py")
    assert "needs a top-level handle(data, context) function or exactly one class in the module, found A, B" in msg


def test_handler_function_must_exist(assets: Path, tmp_path: Path) -> None:
    msg = fails(tmp_path, "m", "1", f"{assets}/func_handler:missing")
    assert "no top-level function 'missing', and TorchServe needs a top-level missing(data, context) function" in msg
    assert msg.endswith(
        "or exactly one class in the module, found no class. Move helper classes to another module "
        "(add it with --extra-files) or name the entry point as module:function."
    )


def test_handler_syntax_error_points_at_the_line(tmp_path: Path, in_tmp: Path) -> None:
    (in_tmp / "h.py").write_text("def handle(data, context):\n    return [\n")
    assert "handler h.py, line 2: '[' was never closed" in fails(in_tmp, "m", "1", "h.py")


def test_bad_archive_format(assets: Path, tmp_path: Path) -> None:
    msg = fails(tmp_path, "m", "1", str(assets / "func_handler.py"), archive_format="zip")
    assert msg == "--archive-format 'zip' is not one of default, tgz, no-archive, zip-store."
