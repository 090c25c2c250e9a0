"""The ``MAR-INF/MANIFEST.json`` of a model archive: build it exactly as torch-model-archiver does,
and read every shape found in the wild (current, legacy MMS, or none at all).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ts_notebook.errors import ArchiveError
from ts_notebook.jsontypes import JsonObject

MANIFEST_PATH = "MAR-INF/MANIFEST.json"
ARCHIVER_VERSION = "0.12.0"
RUNTIMES = ("python", "python3", "LSP")
# torch-model-archiver writes local time, day first, no zone.
CREATED_ON_FORMAT = "%d/%m/%Y %H:%M:%S"
# Keys of a legacy (MMS / model-archiver 1.x) manifest, kept for display and round trips.
LEGACY_TOP_KEYS = (
    "specificationVersion",
    "implementationVersion",
    "modelServerVersion",
    "engine",
    "license",
    "description",
    "publisher",
)
_MODEL_KEYS = {
    "modelName": "model_name",
    "serializedFile": "serialized_file",
    "handler": "handler",
    "modelFile": "model_file",
    "modelVersion": "model_version",
    "extensions": "extensions",
    "requirementsFile": "requirements_file",
    "configFile": "config_file",
}


@dataclass(frozen=True)
class Manifest:
    """What an archive says about its model.

    ``source`` tells where the values came from: ``"current"`` (torch-model-archiver 0.x),
    ``"legacy"`` (MMS model-archiver, with ``specificationVersion`` and friends) or ``"missing"``
    (no manifest in the archive; the name is derived from the file name, as TorchServe does).
    """

    model_name: str
    handler: str = ""
    model_version: str | None = None
    serialized_file: str | None = None
    model_file: str | None = None
    extensions: Any = None
    requirements_file: str | None = None
    config_file: str | None = None
    runtime: str = "python"
    created_on: str | None = None
    archiver_version: str | None = ARCHIVER_VERSION
    source: str = "current"
    legacy: JsonObject = field(default_factory=dict)
    extra_model_keys: JsonObject = field(default_factory=dict)

    @classmethod
    def new(
        cls,
        model_name: str,
        handler: str,
        model_version: str,
        *,
        serialized_file: str | None = None,
        model_file: str | None = None,
        requirements_file: str | None = None,
        config_file: str | None = None,
        runtime: str = "python",
        now: datetime | None = None,
    ) -> Manifest:
        """A manifest stamped now, with file names reduced to basenames as the archiver does."""
        return cls(
            model_name=model_name,
            handler=handler,
            model_version=model_version,
            serialized_file=_base(serialized_file),
            model_file=_base(model_file),
            requirements_file=_base(requirements_file),
            config_file=_base(config_file),
            runtime=runtime,
            created_on=(now or datetime.now()).strftime(CREATED_ON_FORMAT),
        )

    def model_dict(self) -> JsonObject:
        """The ``model`` object in torch-model-archiver's key order, optional keys omitted."""
        out: JsonObject = {}
        for key, attr in _MODEL_KEYS.items():
            value = getattr(self, attr)
            if key in ("modelName", "handler") or value:
                out[key] = value
        out.update(self.extra_model_keys)
        return out

    def to_dict(self) -> JsonObject:
        """The whole manifest as a dict in the reference key order."""
        out: JsonObject = {}
        if self.created_on is not None:
            out["createdOn"] = self.created_on
        out.update({k: v for k, v in self.legacy.items() if k != "engine"})
        out["runtime"] = self.runtime
        if "engine" in self.legacy:
            out["engine"] = self.legacy["engine"]
        out["model"] = self.model_dict()
        if self.archiver_version is not None:
            out["archiverVersion"] = self.archiver_version
        return out

    def to_json(self) -> str:
        """Byte-for-byte the archiver's shape: indent 2, no trailing newline."""
        return json.dumps(self.to_dict(), indent=2)


def _base(path: str | None) -> str | None:
    if not path:
        return None
    return path.replace("\\", "/").rstrip("/").split("/")[-1]


def parse_manifest(text: str | bytes, where: str) -> Manifest:
    """Read a manifest of any known shape.

    Raises:
        ArchiveError: the text is not JSON, not an object, or has no ``model.modelName``; the
            message names ``where`` (the archive path) and the problem.
    """
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArchiveError(
            f"{where}: MAR-INF/MANIFEST.json is not valid JSON ({exc}). Rebuild the archive with "
            "%mar_build or torch-model-archiver."
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise ArchiveError(
            f'{where}: MAR-INF/MANIFEST.json has no "model" object, so no server can tell which '
            "handler to run. Rebuild the archive with %mar_build or torch-model-archiver."
        )
    model: JsonObject = data["model"]
    name = model.get("modelName")
    if not isinstance(name, str) or not name:
        raise ArchiveError(f'{where}: MAR-INF/MANIFEST.json has no "model.modelName". Rebuild the archive.')
    legacy = {k: data[k] for k in LEGACY_TOP_KEYS if k in data}

    def as_str(key: str) -> str | None:
        value = model.get(key)
        return None if value is None else str(value)

    return Manifest(
        model_name=name,
        handler=as_str("handler") or "",
        model_version=as_str("modelVersion"),
        serialized_file=as_str("serializedFile"),
        model_file=as_str("modelFile"),
        extensions=model.get("extensions"),
        requirements_file=as_str("requirementsFile"),
        config_file=as_str("configFile"),
        runtime=str(data.get("runtime", "python")),
        created_on=data.get("createdOn"),
        archiver_version=data.get("archiverVersion"),
        source="legacy" if legacy else "current",
        legacy=legacy,
        extra_model_keys={k: v for k, v in model.items() if k not in _MODEL_KEYS},
    )


def missing_manifest(archive_stem: str) -> Manifest:
    """What TorchServe assumes for an archive with no manifest: the name of the file, nothing else."""
    return Manifest(model_name=archive_stem, source="missing", archiver_version=None)
