"""A served request on disk, beside its golden test: JSON and the bytes as they were, never a pickle.

One folder per request, named by its request id::

    request.json    what was served and how: model, version, route, the row fields (a JSON value each,
                    bytes tagged as ``rows`` writes them) and headers, the worker's system_properties,
                    the status and the answer's file
    row-0.bin       a row field that was bytes (an upload), as the handler got it
    answer.json     the answer's bytes as sent (``.json``, ``.txt`` or ``.bin`` by what they hold)

Headers that carry credentials (``Authorization``, ``Cookie``) are not written: a test folder is
made to be committed, and the inference token would go with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ts_notebook import rows
from ts_notebook.compare import Answer, decode_body
from ts_notebook.errors import TsNotebookError
from ts_notebook.jsontypes import JsonObject
from ts_notebook.records import ServedRequest

FORMAT = 1
REQUEST_FILE = "request.json"
SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_SUFFIX = {"json": ".json", "text": ".txt", "bytes": ".bin"}


class GoldenError(TsNotebookError):
    """Served requests could not be written as tests, or a written test's files cannot be read."""


@dataclass(frozen=True)
class RecordedRequest:
    """A served request as its golden test reads it back: what to send, and what was answered."""

    request_id: str
    model: str
    version: str
    method: str
    path: str
    row: JsonObject  # exactly as the handler got it: bytes, bytearray, str or a JSON value per field
    headers: JsonObject
    system_properties: JsonObject  # the serving worker's, without its model_dir
    answer: Answer


def write_request(folder: Path, record: ServedRequest) -> None:
    """Write one full record (``Client.request``'s) into ``folder``, which must not exist yet."""
    folder.mkdir()
    fields: dict[str, object] = {}
    for i, (name, value) in enumerate((record.row or {}).items()):
        if isinstance(value, bytes | bytearray):
            file = f"row-{i}.bin"
            (folder / file).write_bytes(bytes(value))
            fields[name] = {"file": file, "type": type(value).__name__}
        else:
            fields[name] = {"value": rows.encode(value)}
    body = record.body or b""
    answer_file = "answer" + _SUFFIX[decode_body(body).kind]
    (folder / answer_file).write_bytes(body)
    context = record.context
    properties = {k: v for k, v in (context.properties() if context else {}).items() if k != "model_dir"}
    served = {
        "format": FORMAT,
        "request_id": record.request_id,
        "model": record.model,
        "version": record.version,
        "method": record.method,
        "path": record.path,
        "served_by": {"worker": record.worker, "generation": record.gen_id, "batch_size": record.batch_size},
        "row": fields,
        "headers": rows.encode({k: v for k, v in (record.headers or {}).items() if k.lower() not in SECRET_HEADERS}),
        "system_properties": rows.encode(properties),
        "answer": {
            "status": record.status,
            "file": answer_file,
            "error": record.error.message if record.error else None,
        },
    }
    (folder / REQUEST_FILE).write_text(json.dumps(served, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def load_request(folder: str | Path) -> RecordedRequest:
    """Read back what ``write_request`` wrote.

    Raises:
        GoldenError: the folder or a file in it is missing or is not what ``write_request`` writes.
    """
    where = Path(folder)
    try:
        data = json.loads((where / REQUEST_FILE).read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise GoldenError(f"{where / REQUEST_FILE}: format {data.get('format')!r}, this ts_notebook reads {FORMAT}")
        row = {name: _field(where, entry) for name, entry in data["row"].items()}
        answer = data["answer"]
        return RecordedRequest(
            str(data["request_id"]),
            str(data["model"]),
            str(data["version"]),
            str(data["method"]),
            str(data["path"]),
            row,
            rows.decode(data["headers"]),
            rows.decode(data["system_properties"]),
            Answer(int(answer["status"]), (where / str(answer["file"])).read_bytes()),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise GoldenError(
            f"{where}: cannot read this recorded request ({type(exc).__name__}: {exc}). "
            "Write the tests again with %ts_serve requests NAME --to-pytest FILE."
        ) from exc


def _field(folder: Path, entry: JsonObject) -> Any:
    if "file" in entry:
        raw = (folder / str(entry["file"])).read_bytes()
        return bytearray(raw) if entry.get("type") == "bytearray" else raw
    return rows.decode(entry["value"])
