"""The archive benchmark's one check outside the timing: our ``default`` archive is a sound zip whose
weights are the input, byte for byte (a fast archive that TorchServe could not load would be worthless)."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path
from typing import Any

from common import WORK
from inputs import READ_BLOCK, Inputs


def verify_default(inputs: Inputs) -> dict[str, Any]:
    """Outside the timing: our default archive is a sound zip whose weights are the input, byte for byte."""
    from ts_notebook.archive import build_archive

    out = WORK / "out-verify"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    try:
        info = build_archive(
            "big",
            "1.0",
            str(inputs.handler),
            serialized_file=str(inputs.weights),
            model_file=str(inputs.model_file),
            export_path=out,
            force=True,
        )
        with zipfile.ZipFile(info.path) as zf:
            bad_member = zf.testzip()  # decompresses every member and checks its CRC
            with zf.open(inputs.weights.name) as member:
                inside = _sha256(member)
            methods = {i.filename: _method(i.compress_type) for i in zf.infolist()}
    finally:
        shutil.rmtree(out, ignore_errors=True)
    weights_identical = inside == _sha256_file(inputs.weights)
    return {
        "testzip_ok": bad_member is None,
        "weights_identical": weights_identical,
        "members": methods,
        "ok": bad_member is None and weights_identical and "MAR-INF/MANIFEST.json" in methods,
    }


def _method(compress_type: int) -> str:
    return {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}.get(compress_type, str(compress_type))


def _sha256(fh: Any) -> str:
    digest = hashlib.sha256()
    while block := fh.read(READ_BLOCK):
        digest.update(block)
    return digest.hexdigest()


def _sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return _sha256(fh)
