from __future__ import annotations

from datetime import datetime

import pytest

from ts_notebook.archive import Manifest, parse_manifest
from ts_notebook.errors import ArchiveError

# Verbatim from torch-model-archiver 0.12.0 (shared/torchserve-reference/results/archives.md, eager_default_full).
REFERENCE_FULL = """{
  "createdOn": "22/11/2026 01:14:22",
  "runtime": "python",
  "model": {
    "modelName": "tiny_eager",
    "serializedFile": "tiny_state.pth",
    "handler": "probe_handler.py",
    "modelFile": "model.py",
    "modelVersion": "1.0",
    "requirementsFile": "requirements.txt",
    "configFile": "model-config.yaml"
  },
  "archiverVersion": "0.12.0"
}"""

REFERENCE_MINIMAL = """{
  "createdOn": "22/11/2026 01:14:22",
  "runtime": "python",
  "model": {
    "modelName": "minimal",
    "handler": "func_handler.py",
    "modelVersion": "1"
  },
  "archiverVersion": "0.12.0"
}"""

WHEN = datetime(2026, 11, 22, 1, 14, 22)


def test_full_manifest_is_byte_for_byte_the_reference() -> None:
    m = Manifest.new(
        "tiny_eager",
        "probe_handler.py",
        "1.0",
        serialized_file="/some/dir/tiny_state.pth",
        model_file="src/model.py",
        requirements_file="/x/requirements.txt",
        config_file="cfg/model-config.yaml",
        now=WHEN,
    )
    assert m.to_json() == REFERENCE_FULL


def test_minimal_manifest_omits_optional_keys() -> None:
    assert Manifest.new("minimal", "func_handler.py", "1", now=WHEN).to_json() == REFERENCE_MINIMAL


def test_current_manifest_round_trips() -> None:
    m = parse_manifest(REFERENCE_FULL, "x.mar")
    assert (m.model_name, m.serialized_file, m.model_file, m.source) == (
        "tiny_eager",
        "tiny_state.pth",
        "model.py",
        "current",
    )
    assert m.to_json() == REFERENCE_FULL


def test_legacy_mms_manifest_is_understood() -> None:
    legacy = """{"specificationVersion": "1.0", "implementationVersion": "1.0", "modelServerVersion": "1.0",
      "license": "Apache 2.0", "runtime": "python", "engine": {"engineName": "MXNet", "engineVersion": "1.2.0"},
      "model": {"modelName": "squeezenet_v1.1", "description": "SqueezeNet", "modelVersion": 1.0,
                "handler": "mxnet_vision_service:handle"},
      "publisher": {"author": "MXNet SDK team", "email": "noreply@example.com"}}"""
    m = parse_manifest(legacy, "squeezenet.mar")
    assert m.source == "legacy"
    assert (m.model_name, m.handler, m.model_version) == ("squeezenet_v1.1", "mxnet_vision_service:handle", "1.0")
    assert m.legacy["engine"] == {"engineName": "MXNet", "engineVersion": "1.2.0"}
    assert m.extra_model_keys == {"description": "SqueezeNet"}
    assert '"specificationVersion": "1.0"' in m.to_json()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{not json", "is not valid JSON"),
        ('{"runtime": "python"}', 'has no "model" object'),
        ('{"model": {"handler": "h.py"}}', 'has no "model.modelName"'),
    ],
)
def test_broken_manifests_name_the_archive_and_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(ArchiveError) as err:
        parse_manifest(text, "broken.mar")
    assert str(err.value).startswith("broken.mar: ")
    assert fragment in str(err.value)
