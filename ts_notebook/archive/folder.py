"""What a model folder holds for whoever runs its handler: its MANIFEST.json and the model-config.yaml
that the manifest names (``configFile``). One reader, so the backend, the doctor's probe, the exports'
runtime, the notebook workspace and golden tests see the same settings."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from ts_notebook.archive.manifest import MANIFEST_PATH
from ts_notebook.jsontypes import JsonObject


def folder_manifest(model_dir: Path) -> JsonObject:
    """The folder's MANIFEST.json as it is written (``{}`` when the folder has none).

    Raises:
        ValueError: the file is not valid JSON (``json.JSONDecodeError``).
    """
    path = model_dir / MANIFEST_PATH
    manifest: JsonObject = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return manifest


def model_config(model_dir: Path, manifest: JsonObject) -> JsonObject:
    """The model-config.yaml the manifest names, parsed safely (``{}`` when it names none or it is missing)."""
    model = manifest.get("model")
    name = model.get("configFile") if isinstance(model, dict) else None
    if not name or not (model_dir / str(name)).is_file():
        return {}
    config: JsonObject = yaml.safe_load((model_dir / str(name)).read_text(encoding="utf-8")) or {}
    return config
