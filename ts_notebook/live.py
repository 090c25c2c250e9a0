"""Live handlers: a ``%%handler NAME --serve [MODEL]`` cell's code goes to the served model.

If MODEL is registered, the backend makes a new generation from its current files with the cell
as the handler and swaps to it with zero failed requests (in place when only the handler changed
and ``initialize`` is the same code, else blue/green). If it is not registered yet, it is
registered from the cell's ``--archive`` or ``--model-dir`` assets (or the cell alone) with the
cell's code, so the first answer already comes from the cell. Kernel side; never prints.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from ts_notebook.archive.build import build_archive
from ts_notebook.client import Client, ServerError
from ts_notebook.errors import BackendError
from ts_notebook.handler.trace import Trace
from ts_notebook.records import Swap


@dataclass(frozen=True)
class LiveReload:
    """The value of a ``--serve`` cell: which model now runs the cell's code, how, and the dry run."""

    model: str
    report: Swap  # the swap to the cell's code (the first one, for a model registered from the cell)
    registered: bool = False  # True when --serve registered the model first
    trace: Trace | None = None

    def to_text(self) -> str:
        if self.registered:  # the swap of a model with no workers yet says nothing worth showing
            status = f'registered "{self.model}" from this cell; Model "{self.model}" serves generation '
            lines = [f"served: {status}{self.report.gen_id} with 1 worker"]
        else:
            lines = [f"served: {self.report.status}"]
        if self.report.note and not self.registered:
            lines.append(f"  ({self.report.note})")
        if self.trace is not None:
            lines.append(self.trace.to_text())
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        head = html.escape(self.to_text().split("\n", 1)[0])
        trace = self.trace._repr_html_() if self.trace is not None else ""
        return f"<div class='tsn-live'><p><b>{head}</b></p>{trace}</div>"


def reload_failed(exc: ServerError) -> BackendError:
    """A failed reload as the cell shows it: the real error, its handler line, the traceback's end."""
    tail = "\n".join((exc.traceback or "").strip().splitlines()[-12:])
    message = exc.server_message if exc.detail else str(exc)
    return BackendError(f"{message}\n{tail}".rstrip())


def serve_cell(
    client: Client,
    model: str,
    name: str,
    source: str,
    handler_path: Path,
    *,
    store: Path,
    archive: str | None = None,
    model_dir: str | None = None,
) -> LiveReload:
    """Serve handler cell ``name`` (``source``, saved at ``handler_path``) as model ``model``.

    Raises:
        BackendError: the new code did not load (the old code keeps serving; a model registered
            just for this is unregistered again), or the backend cannot be reached.
    """
    try:
        client.describe(model)
    except ServerError as exc:
        if exc.status != 404:
            raise
        return _register(client, model, name, source, _first_url(model, handler_path, store, archive, model_dir))
    try:
        return LiveReload(model, client.reload_handler(model, source, f"{name}.py"))
    except ServerError as exc:
        raise reload_failed(exc) from None


def _first_url(model: str, handler_path: Path, store: Path, archive: str | None, model_dir: str | None) -> str:
    """What an unregistered MODEL is registered from: the cell's ``--archive``, or the cell and (if
    given) the ``--model-dir`` files built as a no-archive model in ``store``."""
    if archive is not None:
        return str(Path(archive).resolve())
    store.mkdir(parents=True, exist_ok=True)
    info = build_archive(
        model,
        "1.0",
        str(handler_path),
        model_path=model_dir,
        archive_format="no-archive",
        export_path=store,
        force=True,
    )
    return str(info.path)


def _register(client: Client, model: str, name: str, source: str, url: str) -> LiveReload:
    client.register(url, model_name=model, initial_workers=0)
    try:
        report = client.reload_handler(model, source, f"{name}.py")
        client.scale(model, 1, synchronous=True)
    except ServerError as exc:
        client.unregister(model)  # a failed first load leaves nothing registered
        raise reload_failed(exc) if exc.traceback is not None else BackendError(str(exc)) from None
    return LiveReload(model, report, registered=True)
