"""Replaying a served request in the kernel: the same ``data`` rows, headers and Context the serving
worker had, run as a dry-run trace with the served code or with a handler cell's.

The served request comes from the backend's replay ring (``Client.request``); its batch is
re-run whole unless ``alone``. The trace is the dry run's, so a failure shows the stage, the
exception, the handler line and the traceback, and its exception can be debugged post mortem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ts_notebook.client import Client
from ts_notebook.errors import HandlerError
from ts_notebook.handler.payload import Request
from ts_notebook.handler.trace import Trace, dry_run


@dataclass(frozen=True)
class Replay:
    """The value of ``%ts_serve replay``: what the server answered, and what the replay did."""

    request_id: str
    served: dict[str, Any]  # the served request's record: status, error, worker, generation, stages
    trace: Trace
    batch: list[str] = field(default_factory=list)  # the request ids replayed together

    @property
    def ok(self) -> bool:
        return self.trace.ok

    def to_text(self) -> str:
        s = self.served
        error = s.get("error") or {}
        answer = f"{s['status']} {error.get('message', '')}".rstrip()
        head = (
            f"replay of request {self.request_id} ({len(self.batch)} request(s) of batch {s.get('batch_id')}): "
            f"served by worker {s.get('worker')} running generation {s.get('gen_id')}, which answered {answer}"
        )
        where = f"\nserved failure at {error['where']}" if error.get("where") else ""
        cut = (
            "\nnote: the served body was longer than the backend keeps (ts_notebook_replay_body_bytes): "
            "this replay ran its first part"
            if s.get("truncated")
            else ""
        )
        return f"{head}{where}{cut}\n{self.trace.to_text()}"

    def __repr__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        import html

        return f"<div class='tsn-replay'><pre>{html.escape(self.to_text())}</pre>{self.trace._repr_html_()}</div>"


def replay(
    client: Client,
    request_id: str,
    *,
    handler: str | None = None,
    handler_dir: Path | None = None,
    alone: bool = False,
) -> Replay:
    """Re-run served request ``request_id`` (and the rest of its batch unless ``alone``) in this process.

    ``handler`` names the handler to run (a ``%%handler`` cell saved in ``handler_dir``); by
    default the served code, from the worker's model dir.

    Raises:
        BackendError: the backend does not keep that request (any more).
        HandlerError: its batch's other requests were dropped from the ring and ``alone`` was not given.
    """
    record = client.request(request_id)
    ids = [request_id] if alone else list(record.get("batch") or [request_id])
    records = [record if rid == request_id else client.request(rid) for rid in ids]
    if len(records) < (record.get("batch_size") or 1) and not alone:
        raise HandlerError(
            f"request {request_id} was served in a batch of {record.get('batch_size')}, and only {len(records)} of "
            "them are still kept: replay it with --alone, or raise ts_notebook_replay_count"
        )
    context = record.get("context") or {}
    manifest = context.get("manifest") or {}
    served_handler = str(manifest.get("model", {}).get("handler", ""))
    requests = [Request(r["row"], r["headers"], r["id"]) for r in records]
    trace = dry_run(
        handler or served_handler,
        context["model_dir"],
        requests,
        model_name=record["model"],
        manifest=manifest,
        model_yaml_config=context.get("model_yaml_config") or {},
        handler_dir=handler_dir if handler else None,
        system_properties=context.get("system_properties") or {},
    )
    return Replay(request_id, record, trace, ids)
