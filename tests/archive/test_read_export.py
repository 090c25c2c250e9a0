from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
import torch

from tests.assets import tiny_model
from ts_notebook.archive import build_archive, export_model, open_archive
from ts_notebook.archive.inspect import diagnose
from ts_notebook.errors import ArchiveError

X = torch.tensor([[1.0, 2.0, 3.0, 4.0]])


def eager(assets: Path, out: Path, fmt: str = "default"):  # type: ignore[no-untyped-def]
    return build_archive(
        "eager",
        "1.0",
        str(assets / "handler.py"),
        model_file=str(assets / "model.py"),
        serialized_file=str(assets / "tiny_state.pth"),
        export_path=out,
        archive_format=fmt,
    )


@pytest.mark.parametrize("fmt", ["default", "tgz", "no-archive"])
def test_eager_export_is_a_verified_state_dict(assets: Path, tmp_path: Path, fmt: str) -> None:
    result = export_model(eager(assets, tmp_path, fmt).path, tmp_path / "out.pt")
    assert result.kind == "state_dict"
    assert "loaded strictly into TinyNet()" in result.detail
    model = tiny_model()
    with torch.no_grad():
        expected = model(X)
        for p in model.parameters():
            p.zero_()
        model.load_state_dict(torch.load(tmp_path / "out.pt", weights_only=True))
        assert torch.allclose(model(X), expected)


def test_torchscript_export_loads_and_predicts(assets: Path, tmp_path: Path) -> None:
    info = build_archive(
        "ts", "1.0", str(assets / "handler.py"), serialized_file=str(assets / "tiny_ts.pt"), export_path=tmp_path
    )
    result = export_model(info.path, tmp_path / "model.pt")
    assert (result.kind, result.source) == ("torchscript", "tiny_ts.pt")
    loaded = torch.jit.load(str(tmp_path / "model.pt"))
    assert torch.allclose(loaded(X), tiny_model()(X))


def test_other_serialized_files_are_copied_as_is(assets: Path, tmp_path: Path) -> None:
    blob = tmp_path / "model.onnx"
    blob.write_bytes(b"onnx-bytes")
    info = build_archive("o", "1", str(assets / "func_handler.py"), serialized_file=str(blob), export_path=tmp_path)
    result = export_model(info.path, tmp_path / "exported.onnx")
    assert result.kind == "file"
    assert (tmp_path / "exported.onnx").read_bytes() == b"onnx-bytes"


def test_weights_that_do_not_fit_the_model_are_reported(assets: Path, tmp_path: Path) -> None:
    torch.save({"fc1.weight": torch.zeros(8, 4), "other": torch.zeros(1)}, tmp_path / "wrong.pth")
    info = build_archive(
        "w",
        "1",
        str(assets / "handler.py"),
        model_file=str(assets / "model.py"),
        serialized_file=str(tmp_path / "wrong.pth"),
        export_path=tmp_path,
    )
    with pytest.raises(
        ArchiveError, match=r"wrong.pth does not fit TinyNet .*missing keys \['fc1.bias'.*unexpected keys \['other'\]"
    ):
        export_model(info.path, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_export_without_serialized_file_says_so(assets: Path, tmp_path: Path) -> None:
    info = build_archive("n", "1", str(assets / "func_handler.py"), export_path=tmp_path)
    with pytest.raises(ArchiveError, match="names no serializedFile"):
        export_model(info.path, tmp_path / "out.pt")


def test_export_does_not_overwrite_without_force(assets: Path, tmp_path: Path) -> None:
    info = eager(assets, tmp_path)
    (tmp_path / "out.pt").write_bytes(b"mine")
    with pytest.raises(ArchiveError, match="already exists; pass force=True"):
        export_model(info.path, tmp_path / "out.pt")
    assert export_model(info.path, tmp_path / "out.pt", force=True).kind == "state_dict"


def test_archive_without_manifest_is_read_and_named_after_the_file(tmp_path: Path) -> None:
    path = tmp_path / "legacy_model.mar"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model.py", "x = 1\n")
    info = open_archive(path)
    assert (info.manifest.model_name, info.manifest.source, info.names) == ("legacy_model", "missing", ["model.py"])
    assert diagnose(info) == (
        "no MAR-INF/MANIFEST.json: TorchServe cannot tell which handler to run. Rebuild with %mar_build.",
    )


def test_legacy_manifest_archive_is_read(tmp_path: Path) -> None:
    path = tmp_path / "old.mar"
    manifest = {
        "specificationVersion": "1.0",
        "implementationVersion": "1.0",
        "modelServerVersion": "1.0",
        "runtime": "python",
        "engine": {"engineName": "PyTorch"},
        "model": {"modelName": "old", "handler": "service:handle", "modelVersion": "1.0"},
    }
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("service.py", "def handle(data, context):\n    return data\n")
        zf.writestr("MAR-INF/MANIFEST.json", json.dumps(manifest))
    info = open_archive(path)
    assert (info.manifest.source, info.manifest.handler) == ("legacy", "service:handle")
    assert diagnose(info) == ()


def test_diagnose_finds_what_would_stop_torchserve(assets: Path, tmp_path: Path) -> None:
    folder = eager(assets, tmp_path, "no-archive").path
    assert diagnose(open_archive(folder)) == ()
    (folder / "tiny_state.pth").unlink()
    (folder / "handler.py").write_text("class A: pass\nclass B: pass\n")
    problems = diagnose(open_archive(folder))
    assert problems[0] == "manifest names serializedFile 'tiny_state.pth' but the archive has no such file."
    assert problems[1].startswith(
        "handler handler.py: TorchServe needs a top-level handle(data, context) function or exactly one class"
    )
    assert "found A, B" in problems[1]


@pytest.mark.parametrize("name", ["tiny_state.pth", "tiny_ts.pt", "notes.txt"])
def test_model_files_and_other_files_are_not_archives(assets: Path, name: str) -> None:
    with pytest.raises(ArchiveError, match="not a model archive .* A .pt file is a model, not an archive"):
        open_archive(assets / name)


def test_missing_archive(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="nope.mar: no such archive"):
        open_archive(tmp_path / "nope.mar")


def test_tgz_read_strips_the_model_folder(assets: Path, tmp_path: Path) -> None:
    info = eager(assets, tmp_path, "tgz")
    shutil.move(info.path, tmp_path / "renamed.tar.gz")
    again = open_archive(tmp_path / "renamed.tar.gz")
    assert set(again.names) == {"handler.py", "model.py", "tiny_state.pth"}


def test_huge_manifest_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "bomb.mar"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("MAR-INF/MANIFEST.json", b" " * (2 << 20))
    with pytest.raises(ArchiveError, match=r"MAR-INF/MANIFEST.json is 2097152 bytes, over the 1048576 bytes"):
        open_archive(path)


def test_shape_mismatch_on_export_is_an_archive_error(assets: Path, tmp_path: Path) -> None:
    torch.save(
        {
            "fc1.weight": torch.zeros(9, 4),
            "fc1.bias": torch.zeros(8),
            "fc2.weight": torch.zeros(3, 8),
            "fc2.bias": torch.zeros(3),
        },
        tmp_path / "shape.pth",
    )
    info = build_archive(
        "s",
        "1",
        str(assets / "handler.py"),
        model_file=str(assets / "model.py"),
        serialized_file=str(tmp_path / "shape.pth"),
        export_path=tmp_path,
    )
    with pytest.raises(
        ArchiveError, match=r"(?s)shape.pth does not fit TinyNet from model.py: .*size mismatch for fc1.weight"
    ):
        export_model(info.path, tmp_path / "out.pt")


def test_export_imports_each_archives_own_helpers(assets: Path, tmp_path: Path) -> None:
    import sys

    for width in (4, 8):
        src = tmp_path / f"src{width}"
        src.mkdir()
        (src / "layers.py").write_text(f"WIDTH = {width}\n")
        (src / "model.py").write_text(
            "import torch\nimport layers\n\n\nclass Net(torch.nn.Module):\n"
            "    def __init__(self):\n        super().__init__()\n"
            "        self.fc = torch.nn.Linear(layers.WIDTH, 2)\n"
        )
        torch.save({"fc.weight": torch.zeros(2, width), "fc.bias": torch.zeros(2)}, src / "w.pth")
        build_archive(
            f"n{width}",
            "1",
            str(assets / "func_handler.py"),
            model_file=str(src / "model.py"),
            serialized_file=str(src / "w.pth"),
            extra_files=str(src / "layers.py"),
            export_path=tmp_path,
        )
    assert export_model(tmp_path / "n4.mar", tmp_path / "n4.pt").kind == "state_dict"
    assert export_model(tmp_path / "n8.mar", tmp_path / "n8.pt").kind == "state_dict"
    assert "layers" not in sys.modules
