"""Differential tests against real torch-model-archiver 0.12.0 and TorchServe 0.12.0.

- The same inputs built by the real archiver and by ``%mar_build`` (same flags) give the same file
  set, the same bytes and the same manifest (``createdOn`` aside), in all four formats.
- Our archives (eager and TorchScript, each in all four formats) load in real TorchServe and
  answer exactly like the reference archive.
- Archives built by the real archiver are read and exported by us.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from IPython.core.interactiveshell import InteractiveShell

from tests.assets import tiny_model
from ts_notebook.archive import ArchiveInfo, export_model, open_archive
from ts_notebook.archive.read import read_member
from ts_notebook.deploy.torchserve import TorchServe

from .conftest import Archiver

pytestmark = pytest.mark.compat

FORMATS = ["default", "zip-store", "tgz", "no-archive"]
# Inputs as a user types them, run from the assets folder. Every torch-model-archiver flag appears.
CASES = {
    "eager_full": "--model-file model.py --serialized-file tiny_state.pth --handler handler.py "
    "--extra-files index_to_name.json,notes.txt,extra_dir -c model-config.yaml -r requirements.txt",
    "torchscript": "--serialized-file tiny_ts.pt --handler handler.py",
    "function_entry": "--handler func_handler:my_entry --runtime python3",
    "builtin_handler": "--serialized-file tiny_ts.pt --handler base_handler --extra-files index_to_name.json",
    "nested_and_wildcard": "--handler func_handler.py --extra-files extra_dir/sub/b.txt,*.json",
}
REQUEST = json.dumps({"input": [1, 2, 3, 4]}).encode()


@pytest.fixture(scope="module")
def shell() -> Iterator[InteractiveShell]:
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "ts_notebook")
    yield ip


def build_both(
    case: str,
    fmt: str,
    version: str,
    real_archiver: Archiver,
    shell: InteractiveShell,
    assets: Path,
    out: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[ArchiveInfo, ArchiveInfo]:
    name = f"{case}_{fmt}".replace("-", "_")
    args = f"--model-name {name} --version {version} {CASES[case]} --archive-format {fmt}"
    (out / "ref").mkdir()
    (out / "ours").mkdir()
    proc = real_archiver(*shlex.split(args), "--export-path", out / "ref", cwd=assets)
    assert proc.returncode == 0, proc.stderr
    monkeypatch.chdir(assets)
    ours = shell.run_line_magic("mar_build", f"{args} --export-path {out / 'ours'}")
    suffix = {"default": ".mar", "zip-store": ".mar", "tgz": ".tar.gz", "no-archive": ""}[fmt]
    ref = open_archive(out / "ref" / f"{name}{suffix}")
    assert ours.path.name == ref.path.name
    return ref, ours


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", list(CASES))
def test_same_inputs_give_the_same_archive(
    case: str,
    fmt: str,
    real_archiver: Archiver,
    shell: InteractiveShell,
    model_assets: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ref, ours = build_both(case, fmt, "2.0-beta+x", real_archiver, shell, model_assets, tmp_path, monkeypatch)
    assert sorted(ours.names) == sorted(ref.names)
    assert ours.format == ref.format
    ref_manifest, our_manifest = ref.manifest.to_dict(), ours.manifest.to_dict()
    assert ref_manifest.pop("createdOn") and our_manifest.pop("createdOn")
    assert our_manifest == ref_manifest
    assert list(ours.manifest.to_dict()) == list(ref.manifest.to_dict())
    for name in ref.names:
        assert read_member(ours, name) == read_member(ref, name), name


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", ["eager_full", "torchscript"])
def test_our_archives_serve_like_the_reference_in_real_torchserve(
    kind: str,
    fmt: str,
    real_archiver: Archiver,
    shell: InteractiveShell,
    torchserve: TorchServe,
    model_assets: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ref, ours = build_both(kind, fmt, "1.0", real_archiver, shell, model_assets, tmp_path, monkeypatch)
    answers = [
        torchserve.serve_once(info.path, f"{info.manifest.model_name}_{label}", REQUEST)
        for label, info in (("ref", ref), ("ours", ours))
    ]
    assert answers[0][0] == 200, answers[0]
    assert answers[1] == answers[0]  # same status, same bytes
    expected = tiny_model()(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))[0].tolist()
    assert json.loads(answers[1][1]) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("fmt", ["default", "tgz", "no-archive"])
def test_reference_archives_are_read_and_exported_by_us(
    fmt: str, real_archiver: Archiver, model_assets: Path, tmp_path: Path
) -> None:
    for kind, args in (("eager", CASES["eager_full"]), ("ts", CASES["torchscript"])):
        proc = real_archiver(
            *shlex.split(f"--model-name {kind} -v 1 {args} --archive-format {fmt} --export-path {tmp_path}"),
            cwd=model_assets,
        )
        assert proc.returncode == 0, proc.stderr
    suffix = {"default": ".mar", "tgz": ".tar.gz", "no-archive": ""}[fmt]
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    expected = tiny_model()(x)

    eager = export_model(tmp_path / f"eager{suffix}", tmp_path / "eager.pt")
    assert eager.kind == "state_dict"
    model = tiny_model()
    model.load_state_dict(torch.load(tmp_path / "eager.pt", weights_only=True))
    assert torch.allclose(model(x), expected)

    scripted = export_model(tmp_path / f"ts{suffix}", tmp_path / "ts.pt")
    assert scripted.kind == "torchscript"
    assert torch.allclose(torch.jit.load(str(tmp_path / "ts.pt"))(x), expected)


def test_parallel_deflated_big_member_is_read_by_torchserves_java_unzip(
    shell: InteractiveShell,
    torchserve: TorchServe,
    model_assets: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Big members take our fast path (independent pieces joined by sync flushes); TorchServe's JVM
    must unzip them, or registration fails."""
    torch.save({"w": torch.randn(3_000_000)}, tmp_path / "big_weights.pth")  # 12 MB: three 4 MiB pieces
    monkeypatch.chdir(model_assets)
    info = shell.run_line_magic(
        "mar_build",
        f"--model-name big_member -v 1 {CASES['torchscript']} --extra-files {tmp_path}/big_weights.pth "
        f"--export-path {tmp_path}",
    )
    big = next(f for f in info.files if f.name == "big_weights.pth")
    assert big.compression == "deflate" and big.compressed_size < 0.95 * big.size
    status, body = torchserve.serve_once(info.path, "big_member", REQUEST)
    assert status == 200, body
