"""The one name for a dict whose shape is the outside world's, so every such boundary is greppable.

``JsonObject`` is what ``json.loads`` or ``yaml.safe_load`` gives for an object whose keys and value
types another party decides: TorchServe's JSON (describe, list and error bodies, ``MANIFEST.json``,
``key_file.json``), a user's ``model-config.yaml`` or ``metrics.yaml``, a request's JSON, other
protocols' documents we write in their shape (KServe v2 outputs, OpenAPI, a Jupyter mime bundle), the
dicts TorchServe's handler API hands to user code as such (``system_properties``, a request's ``data``
row and headers), and keyword arguments handed unread to a third-party API (``profiler_args``).

Its values are ``Any`` because their shape is not ours to fix: read them with care (``.get``,
``isinstance``), and turn them into a typed record at the first place that knows what they mean
(``records_json`` does this for the backend's own answers, checking each field).

A value with fields that we build and read is not a ``JsonObject``: it is a dataclass.
Stdlib only; imported by the lowest modules.
"""

from __future__ import annotations

from typing import Any

JsonObject = dict[str, Any]
