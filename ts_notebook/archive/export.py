"""Get the model back out of an archive (.mar -> .pt), verified to load.

- TorchScript: the serialized file is a loadable ``torch.jit`` archive; it is checked with
  ``torch.jit.load`` and copied as is.
- Eager (``modelFile`` + a state_dict): the model file's one ``nn.Module`` class is instantiated,
  the state_dict loaded into it strictly, and the model's own ``state_dict()`` saved, so the
  exported file is proven to fit the architecture.
- Anything else (ONNX, ``pytorch_model.bin`` for a handler that loads it itself...): copied as is.
"""

from __future__ import annotations

import importlib.util
import inspect
import shutil
import tempfile
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ts_notebook.archive.extract import Limits, extract_archive
from ts_notebook.archive.read import open_archive
from ts_notebook.errors import ArchiveError
from ts_notebook.importing import dirs_on_path


@dataclass(frozen=True)
class ExportResult:
    """Where the model went and how it was verified."""

    path: Path
    kind: str  # "torchscript" | "state_dict" | "file"
    source: str  # the serialized file's name in the archive
    detail: str

    def __repr__(self) -> str:
        return f"exported {self.source} -> {self.path} ({self.kind}: {self.detail})"


def export_model(
    archive: str | Path, out: str | Path, *, force: bool = False, limits: Limits | None = None
) -> ExportResult:
    """Write the archive's model to ``out`` (see the module doc for the three cases).

    Raises:
        ArchiveError: no serialized file, ``out`` exists without ``force``, or the weights do not
            fit the model class (the message lists missing and unexpected keys).
    """
    info = open_archive(archive)
    name = info.manifest.serialized_file
    if not name:
        raise ArchiveError(
            f"{archive}: the manifest names no serializedFile, so the archive holds no weights file to export: "
            "its handler builds or loads the model itself, in initialize. To get a .pt, run that initialize "
            "and save what it built: extract the archive (%mar_inspect ARCHIVE --extract DIR), create the "
            "handler and call initialize with a Context for DIR, then torch.save(handler.model.state_dict(), "
            "'model.pt') (torch.jit.save for a scripted model)."
        )
    target = Path(out)
    if target.exists() and not force:
        raise ArchiveError(f"{target} already exists; pass force=True (--force) or choose another name.")
    with tempfile.TemporaryDirectory(prefix="ts_notebook-export-") as tmp:
        model_dir = extract_archive(archive, Path(tmp) / "model", limits=limits)
        weights = model_dir / name
        if not weights.is_file():
            raise ArchiveError(
                f"{archive}: the manifest names serializedFile {name!r} but the archive has no such file."
            )
        if _is_torchscript(weights):
            return _export_torchscript(weights, target, name)
        model_file = info.manifest.model_file
        if model_file and model_file.endswith(".py") and (model_dir / model_file).is_file():
            return _export_eager(model_dir, model_dir / model_file, weights, target, name)
        _copy(weights, target)
        return ExportResult(target, "file", name, "copied as is (not TorchScript, and no Python model file)")


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith("/constants.pkl") or n.endswith("/code/") or "/code/" in n for n in zf.namelist())


def _copy(src: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
    try:
        shutil.copyfile(src, partial)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def _export_torchscript(weights: Path, target: Path, name: str) -> ExportResult:
    import torch

    try:
        torch.jit.load(str(weights), map_location="cpu")  # type: ignore[no-untyped-call]
    except Exception as exc:
        raise ArchiveError(f"{name}: looks like TorchScript but torch.jit.load failed: {exc}") from exc
    _copy(weights, target)
    return ExportResult(target, "torchscript", name, "verified with torch.jit.load")


def _export_eager(model_dir: Path, model_file: Path, weights: Path, target: Path, name: str) -> ExportResult:
    import torch

    cls = _model_class(model_dir, model_file)
    try:
        model = cls()
    except Exception as exc:
        raise ArchiveError(
            f"{model_file.name}: {cls.__name__}() failed, so the weights cannot be verified: {exc!r}"
        ) from exc
    state = torch.load(str(weights), map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ArchiveError(f"{name}: holds a {type(state).__name__}, not a state_dict for {cls.__name__}.")
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches raise even when strict=False
        raise ArchiveError(f"{name} does not fit {cls.__name__} from {model_file.name}: {exc}") from exc
    if result.missing_keys or result.unexpected_keys:
        raise ArchiveError(
            f"{name} does not fit {cls.__name__} from {model_file.name}: missing keys "
            f"{list(result.missing_keys)[:10]}, unexpected keys {list(result.unexpected_keys)[:10]}."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
    try:
        torch.save(model.state_dict(), str(partial))
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return ExportResult(target, "state_dict", name, f"loaded strictly into {cls.__name__}() from {model_file.name}")


def _model_class(model_dir: Path, model_file: Path) -> Any:
    """Import the model file under a private name, with the model dir importable, as TorchServe does."""
    import torch

    module_name = f"_ts_notebook_export_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(module_name, model_file)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py path always has a loader
        raise ArchiveError(f"{model_file.name}: cannot be imported.")
    module = importlib.util.module_from_spec(spec)
    # The model file may import helpers shipped beside it: import them fresh, then forget them.
    with dirs_on_path(model_dir):
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise ArchiveError(f"{model_file.name}: importing it failed: {exc!r}") from exc
    classes = [c for _, c in inspect.getmembers(module, inspect.isclass) if c.__module__ == module_name]
    if len(classes) != 1 or not issubclass(classes[0], torch.nn.Module):
        raise ArchiveError(
            f"{model_file.name}: expected exactly one torch.nn.Module class, found {[c.__name__ for c in classes]}."
        )
    return classes[0]
