"""Replaying a served request in the kernel: the same ``data`` rows, headers and Context the serving
worker had, run as a dry-run trace with the served code or with a handler cell's.

The served request comes from the backend's replay ring (``Client.request``); its batch is
re-run whole unless ``alone``. The trace is the dry run's, so a failure shows the stage, the
exception, the handler line and the traceback, and its exception can be debugged post mortem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ts_notebook.client import Client
from ts_notebook.errors import HandlerError
from ts_notebook.handler.payload import Request
from ts_notebook.handler.trace import Trace, dry_run
from ts_notebook.records import ServedRequest


@dataclass(frozen=True)
class Replay:
    """The value of ``%ts_serve replay``: what the server answered, and what the replay did."""

    request_id: str
    served: ServedRequest  # the served request's record: status, error, worker, generation, stages
    trace: Trace
    batch: list[str] = field(default_factory=list)  # the request ids replayed together

    @property
    def ok(self) -> bool:
        return self.trace.ok

    def to_text(self) -> str:
        s = self.served
        error = s.error
        answer = f"{s.status} {error.message if error else ''}".rstrip()
        head = (
            f"replay of request {self.request_id} ({len(self.batch)} request(s) of batch {s.batch_id}): "
            f"served by worker {s.worker} running generation {s.gen_id}, which answered {answer}"
        )
        where = f"\nserved failure at {error.where}" if error and error.where else ""
        cut = (
            "\nnote: the served body was longer than the backend keeps (ts_notebook_replay_body_bytes): "
            "this replay ran its first part"
            if s.truncated
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
    ids = [request_id] if alone else list(record.batch or [request_id])
    records = [record if rid == request_id else client.request(rid) for rid in ids]
    if len(records) < (record.batch_size or 1) and not alone:
        raise HandlerError(
            f"request {request_id} was served in a batch of {record.batch_size}, and only {len(records)} of "
            "them are still kept: replay it with --alone, or raise ts_notebook_replay_count"
        )
    context = record.context
    if context is None:
        raise HandlerError(f"request {request_id} never reached a worker: there is no handler Context to replay it in")
    manifest = dict(context.manifest)
    model = manifest.get("model")
    served_handler = str(model.get("handler", "")) if isinstance(model, dict) else ""
    requests = [Request(dict(r.row or {}), dict(r.headers or {}), r.request_id) for r in records]
    trace = dry_run(
        handler or served_handler,
        context.model_dir,
        requests,
        model_name=record.model,
        manifest=manifest,
        model_yaml_config=dict(context.model_yaml_config),
        handler_dir=handler_dir if handler else None,
        system_properties=context.properties(),
    )
    return Replay(request_id, record, trace, ids)
