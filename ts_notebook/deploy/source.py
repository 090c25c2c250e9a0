"""What an export ships: the archive and the model's real serving settings, each with where it came from.

A served model's settings come from the server's describe (what it really runs: workers, batching,
timeouts, device), a built archive's from its ``model-config.yaml``, and whatever neither says is
TorchServe's default. Exports write these values, and list them with their origin, so the deployment
behaves as the notebook did.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from ts_notebook.archive.read import open_archive, read_member
from ts_notebook.errors import TsNotebookError
from ts_notebook.jsontypes import JsonObject

# TorchServe 0.12's defaults for a registered model (what it uses when neither the archive nor the
# registration says otherwise).
DEFAULTS: dict[str, int] = {
    "minWorkers": 1,
    "maxWorkers": 1,
    "batchSize": 1,
    "maxBatchDelay": 100,
    "responseTimeout": 120,
    "startupTimeout": 120,
}


class ExportError(TsNotebookError):
    """An export cannot be written as asked (the message says what to change)."""


@dataclass(frozen=True)
class ModelSource:
    """One model to export: its archive, name, version, settings and where each setting came from."""

    archive: Path
    name: str
    version: str
    settings: dict[str, int]
    device: str = "cpu"  # "cpu" or "gpu"
    origin: dict[str, str] = field(default_factory=dict)  # setting -> "served" | "model-config.yaml" | "default"
    requirements: str | None = None  # the archive's requirements file, if it ships one

    @property
    def archive_format(self) -> str:
        return "no-archive" if self.archive.is_dir() else "tgz" if self.archive.name.endswith(".tar.gz") else "mar"

    def with_settings(self, **values: int) -> ModelSource:
        """The same source with some settings chosen by the export (origin ``export``)."""
        return replace(
            self, settings={**self.settings, **values}, origin={**self.origin, **dict.fromkeys(values, "export")}
        )


def from_archive(path: str | os.PathLike[str], name: str | None = None) -> ModelSource:
    """Settings of a built archive (its model-config.yaml, else TorchServe's defaults).

    Raises:
        ExportError: no archive at ``path``.
        ArchiveError: it is not a readable archive.
    """
    archive = Path(path)
    if not archive.exists():
        raise ExportError(f"{archive}: no such archive. Build one with %mar_build (or pass a served model's name).")
    info = open_archive(archive)
    manifest = info.manifest
    config: JsonObject = {}
    if manifest.config_file:
        raw = read_member(info, manifest.config_file)
        loaded = yaml.safe_load(raw) if raw else None
        config = loaded if isinstance(loaded, dict) else {}
    settings, origin = dict(DEFAULTS), dict.fromkeys(DEFAULTS, "default")
    for key in DEFAULTS:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            settings[key], origin[key] = value, "model-config.yaml"
    device = str(config.get("deviceType", "cpu")).lower()
    origin["device"] = "model-config.yaml" if "deviceType" in config else "default"
    return ModelSource(
        archive.resolve(),
        name or manifest.model_name,
        manifest.model_version or "1.0",
        settings,
        "gpu" if device == "gpu" else "cpu",
        origin,
        manifest.requirements_file,
    )


def from_description(description: JsonObject, archive: str | os.PathLike[str]) -> ModelSource:
    """Settings of a served model, from the management API's describe of one version.

    ``deviceType`` gpu, or a worker on a GPU, makes it a GPU model.
    """
    source = from_archive(archive, str(description["modelName"]))
    settings = dict(source.settings)
    origin = dict(source.origin)
    for key in DEFAULTS:
        value = description.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            settings[key], origin[key] = value, "served"
    workers = description.get("workers") or []
    on_gpu = str(description.get("deviceType", "")).lower() == "gpu" or any(w.get("gpu") for w in workers)
    return replace(
        source,
        version=str(description.get("modelVersion") or source.version),
        settings=settings,
        device="gpu" if on_gpu else source.device,
        origin={**origin, "device": "served"},
    )


def archive_of(description: JsonObject, model_store: str | None) -> Path:
    """Where a served version's archive is: its modelUrl, absolute or in the model store."""
    url = str(description.get("modelUrl", "")).removeprefix("file://")
    path = Path(url)
    if not path.is_absolute() and model_store:
        path = Path(model_store) / path.name
    return path
