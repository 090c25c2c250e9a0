"""TorchServe's ``config.properties`` format: a Java ``.properties`` file read as TorchServe reads it.

It lives at the bottom of the package because the backend's settings, the launcher, the doctor and
the real-TorchServe runner all read the same file; none of them should have to import another to do so.
"""

from __future__ import annotations

import re
from pathlib import Path

from ts_notebook.errors import BackendError

_LINE = re.compile(r"([^=:\s]+)\s*[=:]?\s*(.*)")


def read_properties(path: Path) -> dict[str, str]:
    """A Java ``.properties`` file as TorchServe reads it (``key=value`` or ``key: value``, ``#``/``!`` comments).

    Raises:
        BackendError: the file does not exist.
    """
    if not path.is_file():
        raise BackendError(f"--ts-config {path}: no such file.")
    out: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        match = _LINE.match(line)
        if match:
            out[match.group(1)] = match.group(2).strip()
    return out
