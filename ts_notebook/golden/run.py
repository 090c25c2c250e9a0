"""What a golden test runs: a recorded request replayed in-process through the dry run against an
archive or model folder, or sent again to a served URL, and the answer as the client would get it.

The dry run's answer is made as our worker makes it: the handler's output encoded by
``encode_output``, the status and Content-Type the handler set, a ``PredictionException``'s code
and message, 503 "Prediction failed" for any other exception. A served error's body is its
message (as the replay ring keeps it), so an answer from a URL is read the same way.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ts_notebook.archive.extract import extract_archive, model_root
from ts_notebook.archive.folder import folder_manifest, model_config
from ts_notebook.archive.manifest import MANIFEST_PATH
from ts_notebook.compare import Answer, Comparison
from ts_notebook.golden.payloads import SECRET_HEADERS, GoldenError, RecordedRequest
from ts_notebook.handler.answers import encode_output
from ts_notebook.handler.payload import Request
from ts_notebook.handler.trace import Trace, dry_run
from ts_notebook.jsontypes import JsonObject

KEY_ENV = "TS_NOTEBOOK_INFERENCE_KEY"
# Set by the frontend or the transport, not by the client: sending them again would be wrong.
_NOT_RESENT = frozenset(
    {"host", "content-length", "content-type", "transfer-encoding", "connection", "accept-encoding", "explain"}
    | {"url_path"}
    | SECRET_HEADERS
)


@dataclass(frozen=True)
class NewAnswer(Answer):
    """An answer of the code under test, with what its handler raised (the dry run's stage, exception
    and handler line) when it failed."""

    failure: str = ""


def unpack(model: str | Path, dest: Path) -> Path:
    """The model to test as a folder of its own: an archive extracted, a model folder copied (the
    handler runs with that folder as its working dir and may write there, as a worker's does).

    Raises:
        GoldenError: ``model`` is neither an archive nor a folder.
    """
    source = Path(model)
    if not source.exists():
        raise GoldenError(
            f"{source}: no such archive or model folder to test. Rebuild it, or point TS_NOTEBOOK_GOLDEN_MODEL at "
            "the archive or model folder to test."
        )
    return model_root(extract_archive(source, dest / "model"))


def dry_run_answer(recorded: RecordedRequest, model_dir: str | Path) -> NewAnswer:
    """Replay ``recorded``'s row and headers through the handler in ``model_dir`` (a batch of one).

    Raises:
        GoldenError: the folder has no manifest naming a handler, or the handler did not load.
    """
    root = Path(model_dir)
    manifest = folder_manifest(root)
    model = manifest.get("model")
    handler = str(model.get("handler", "")) if isinstance(model, dict) else ""
    if not handler:
        raise GoldenError(f"{root / MANIFEST_PATH}: names no handler to run")
    request = Request(dict(recorded.row), dict(recorded.headers), recorded.request_id)
    trace = dry_run(
        handler,
        root,
        [request],
        model_name=recorded.model,
        manifest=manifest,
        model_yaml_config=model_config(root, manifest),
        system_properties=recorded.system_properties,
    )
    if trace.failure is not None and trace.failure.stage == "initialize":
        raise GoldenError(f"the handler did not load, so no request could be replayed:\n{trace.to_text()}")
    return answer_of(trace)


def answer_of(trace: Trace, index: int = 0) -> NewAnswer:
    """Request ``index``'s answer in a dry run, as the worker would have sent it."""
    failure = trace.failure
    if failure is not None:
        text = str(failure)
        exc = failure.exception
        code, message = getattr(exc, "error_code", None), getattr(exc, "message", None)
        if type(exc).__name__ == "PredictionException" and isinstance(code, int):
            return NewAnswer(code, str(message).encode("utf-8"), failure=text)
        if failure.error_type == "BatchContractError":
            # the worker's words for the same broken contract (the dry run's are longer, for a person)
            listed = isinstance(trace.result, list)
            wrong = "number of batch response mismatched" if listed else "Invalid model predict output"
            return NewAnswer(503, wrong.encode(), failure=text)
        return NewAnswer(503, b"Prediction failed", failure=text)
    try:
        body, implied = encode_output(trace.result[index])
    except TypeError as exc:
        return NewAnswer(503, str(exc).encode("utf-8"), failure=f"postprocess returned {trace.result[index]!r:.200}")
    response = trace.responses[index] if index < len(trace.responses) else None
    headers = {str(k).lower(): v for k, v in (response.headers if response else {}).items()}
    chunks = tuple(encode_output(_mine(item["ret"], index))[0] for item in trace.intermediate)
    return NewAnswer(
        (response.status if response else None) or 200,
        body,
        chunks or None,
        str(headers.get("content-type") or implied),
    )


def _mine(ret: Any, index: int) -> Any:
    """A streamed chunk's part for request ``index`` (the whole chunk when it is not a list)."""
    return ret[index] if isinstance(ret, list) and index < len(ret) else ret


def inference_key(key_file: str | Path | None = None) -> str | None:
    """The inference token: ``TS_NOTEBOOK_INFERENCE_KEY``, else the key file's (TorchServe's
    ``key_file.json``) when it exists, else None (a server without token authorization)."""
    if os.environ.get(KEY_ENV):
        return os.environ[KEY_ENV]
    if key_file is None or not Path(key_file).is_file():
        return None
    data = json.loads(Path(key_file).read_text(encoding="utf-8"))
    key = (data.get("inference") or {}).get("key")
    return str(key) if key else None


def target_url(url: str, recorded: RecordedRequest) -> str:
    """``url`` as given when it has a path; the recorded route (``/predictions/NAME``) on it when not."""
    return url if urllib.parse.urlsplit(url).path.strip("/") else url.rstrip("/") + recorded.path


def post_answer(recorded: RecordedRequest, url: str, *, key: str | None = None, timeout: float = 60.0) -> NewAnswer:
    """Send ``recorded``'s body and headers again (to ``target_url``) and return the answer.

    A streamed answer arrives as one body (its chunks and the final answer together).

    Raises:
        GoldenError: the server cannot be reached.
    """
    body, content_type = http_body(recorded.row, recorded.headers)
    headers = {k: v for k, v in recorded.headers.items() if isinstance(v, str) and k.lower() not in _NOT_RESENT}
    if content_type:
        headers["Content-Type"] = content_type
    if key:
        headers["Authorization"] = f"Bearer {key}"
    target = target_url(url, recorded)
    request = urllib.request.Request(target, body, headers, method=recorded.method)
    # No proxy: a served URL on this machine must not be sent through HTTP(S)_PROXY.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as reply:
            return NewAnswer(reply.status, reply.read(), None, reply.headers.get("Content-Type"))
    except urllib.error.HTTPError as exc:
        return _error_answer(exc.code, exc.read())
    except (urllib.error.URLError, OSError) as exc:
        raise GoldenError(f"{recorded.method} {target}: cannot reach the server ({exc}). Is it serving?") from exc


def _error_answer(status: int, raw: bytes) -> NewAnswer:
    """TorchServe's error JSON read down to its message, which is what the replay ring keeps."""
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return NewAnswer(status, raw)
    if isinstance(value, dict) and isinstance(value.get("message"), str):
        return NewAnswer(status, value["message"].encode("utf-8"))
    return NewAnswer(status, raw)


def http_body(row: JsonObject, headers: JsonObject) -> tuple[bytes, str | None]:
    """The HTTP body that a frontend would shape into ``row``, and its Content-Type."""
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type" and isinstance(v, str)), None)
    base = (content_type or "").split(";", 1)[0].strip().lower()
    if base == "multipart/form-data":
        return _multipart(row, headers)
    if base == "application/x-www-form-urlencoded":
        return urllib.parse.urlencode({k: _text(v) for k, v in row.items()}).encode("utf-8"), content_type
    return _raw(row.get("body", row.get("data", b""))), content_type


def _raw(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value).encode("utf-8")  # a JSON body, decoded by the frontend: the same value again


def _text(value: Any) -> str:
    return value if isinstance(value, str) else _raw(value).decode("utf-8", "replace")


def _multipart(row: JsonObject, headers: JsonObject) -> tuple[bytes, str]:
    boundary = f"golden-{uuid.uuid4().hex}"
    parts = []
    for name, value in row.items():
        field_headers = headers.get(name)
        part_type = field_headers.get("content-type") if isinstance(field_headers, dict) else None
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'
        if isinstance(value, bytes | bytearray):
            head += f'; filename="{name}"'
        if part_type:
            head += f"\r\nContent-Type: {part_type}"
        parts.append(head.encode("utf-8") + b"\r\n\r\n" + _raw(value) + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def failure_text(recorded: RecordedRequest, answer: Answer, found: Comparison) -> str:
    """What a failed golden test says: which request, the first difference, and what the handler raised."""
    raised = answer.failure if isinstance(answer, NewAnswer) else ""
    return (
        f"request {recorded.request_id} ({recorded.method} {recorded.path}) no longer answers as served:\n"
        f"{found.diff}" + (f"\nthe handler raised:\n{raised}" if raised else "")
    )
