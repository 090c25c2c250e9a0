"""Dry-run a handler in this process, stage by stage, as TorchServe's worker would run it.

The trace records the Context the handler got, the exact ``data`` list, each stage it ran
(``initialize``, then ``preprocess`` / ``inference`` / ``postprocess`` inside ``handle`` for class
handlers, or ``handle`` for function handlers) with its output and time, and on failure the
exception with the handler line that raised. Stages are observed by wrapping the instance's own
methods, so a custom ``handle`` that calls them in its own way is traced as it really runs.

A trace is values, text and HTML (both here, beside the values they show); the widget the notebook
shows for it (``widgets/trace.py``) is registered as a display formatter by the extension, so this
module, like the rest of the core, never reaches up into the notebook layer.
"""

from __future__ import annotations

import functools
import html
import os
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ts_notebook.errors import HandlerError
from ts_notebook.handler.compat import ts_compat
from ts_notebook.handler.context import Context
from ts_notebook.handler.load import EntryPoint, Where, import_handler_module, locate
from ts_notebook.handler.load import resolve_entry_point as _resolve
from ts_notebook.handler.metrics_api import MetricRecord
from ts_notebook.handler.payload import Request, batch_of
from ts_notebook.handler.summary import summarize
from ts_notebook.handler.util import IntermediateChunk
from ts_notebook.importing import dirs_on_path
from ts_notebook.jsontypes import JsonObject
from ts_notebook.preview import json_preview

STAGES = ("preprocess", "inference", "postprocess")


@dataclass
class Stage:
    """One stage that ran: its output (kept as is in ``output``) and how long it took."""

    name: str
    seconds: float
    output: Any = None
    summary: str = ""
    ok: bool = True


@dataclass
class Failure:
    """What went wrong: the stage, the exception, and the handler line that raised."""

    stage: str
    error_type: str
    message: str
    where: Where | None
    traceback: str
    # the exception itself, for a post-mortem debugger (not shown, not compared)
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        at = f" at {self.where}" if self.where else ""
        return f"{self.stage} failed{at}\n{self.error_type}: {self.message}"


@dataclass(frozen=True)
class ResponseSettings:
    """What the handler set for one request's response: status, reason phrase, headers."""

    status: int
    phrase: str | None
    headers: dict[str, str]


@dataclass
class Trace:
    """Everything a dry run saw. The value of a ``%%handler`` cell with ``--test``."""

    handler: str
    model_name: str
    system_properties: JsonObject
    manifest: JsonObject | None
    model_yaml_config: JsonObject
    data: list[JsonObject]
    headers: list[JsonObject]
    request_ids: dict[int, str]
    entry_kind: str = ""
    stages: list[Stage] = field(default_factory=list)
    result: Any = None
    failure: Failure | None = None
    metrics: list[MetricRecord] = field(default_factory=list)
    intermediate: list[IntermediateChunk] = field(default_factory=list)
    responses: list[ResponseSettings] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failure is None

    def stage(self, name: str) -> Stage:
        """The last run of the named stage (KeyError if it did not run)."""
        for s in reversed(self.stages):
            if s.name == name:
                return s
        raise KeyError(f"stage {name!r} did not run; ran: {[s.name for s in self.stages]}")

    def to_text(self) -> str:
        return trace_text(self)

    def __repr__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        # Values, text and HTML only: the notebook shows a TraceView instead through a display
        # formatter that ts_notebook.load_ipython_extension registers (the core imports no widgets).
        return trace_html(self)


def trace_text(t: Trace) -> str:
    """The trace as plain text (its repr, and what nbval compares)."""
    status = "ok" if t.ok else f"FAILED in {t.failure.stage}" if t.failure else ""
    lines = [f"handler {t.handler} ({t.entry_kind or 'not loaded'}) for model {t.model_name}: {status}"]
    lines.append("system_properties: " + ", ".join(f"{k}={v!r}" for k, v in t.system_properties.items()))
    lines.append(f"data ({len(t.data)} request{'s' if len(t.data) != 1 else ''}):")
    lines.extend(f"  [{i}] {row!r}" for i, row in enumerate(t.data))
    lines.append("stages:")
    for s in t.stages:
        mark = "ok " if s.ok else "ERR"
        lines.append(f"  {mark} {s.name:<11} {s.seconds * 1000:8.2f} ms  {s.summary}")
    if t.failure is not None:
        lines.extend(str(t.failure).splitlines())
    else:
        lines.append(f"result: {summarize(t.result)}")
    return "\n".join(lines)


def stage_rows_html(t: Trace) -> str:
    """Each stage that ran, with its time and a summary of its output, as an HTML table."""
    rows = []
    for s in t.stages:
        color = "#1a7f37" if s.ok else "#cf222e"
        rows.append(
            f"<tr><td style='color:{color}'>{'✔' if s.ok else '✘'}</td><td><b>{html.escape(s.name)}</b></td>"
            f"<td style='text-align:right'>{s.seconds * 1000:.2f} ms</td>"
            f"<td><code>{html.escape(s.summary)}</code></td></tr>"
        )
    return "<table class='tsn-stages'>" + "".join(rows) + "</table>"


def failure_html(t: Trace) -> str:
    """The failure (stage, exception, handler line, traceback) or, when none, the result, as HTML."""
    if t.failure is None:
        return f"<p>result: <code>{html.escape(summarize(t.result))}</code></p>"
    f = t.failure
    where = f"<p>at <code>{html.escape(str(f.where))}</code></p>" if f.where else ""
    return (
        f"<div class='tsn-failure' style='border-left:4px solid #cf222e;padding-left:8px'>"
        f"<b>{html.escape(f.stage)} failed</b>{where}<pre>{html.escape(f.error_type)}: {html.escape(f.message)}</pre>"
        f"<details><summary>traceback</summary><pre>{html.escape(f.traceback)}</pre></details></div>"
    )


def trace_html(t: Trace) -> str:
    """The whole trace as HTML: the fallback where no widget frontend exists."""
    data = "".join(f"<li><code>{html.escape(repr(row))}</code></li>" for row in t.data)
    return (
        f"<div class='tsn-trace'><b>handler {html.escape(t.handler)}</b> ({html.escape(t.entry_kind or 'not loaded')}) "
        f"for model <b>{html.escape(t.model_name)}</b>"
        f"<details><summary>context.system_properties</summary><pre>{html.escape(json_preview(t.system_properties))}</pre></details>"
        f"<details><summary>context.manifest</summary><pre>{html.escape(json_preview(t.manifest))}</pre></details>"
        f"<p>data ({len(t.data)} requests):</p><ol start='0'>{data}</ol>"
        f"{stage_rows_html(t)}{failure_html(t)}</div>"
    )


@contextmanager
def _working_dir(path: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _record(trace: Trace, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            out = fn(*args, **kwargs)
        except BaseException:
            trace.stages.append(Stage(name, time.perf_counter() - start, None, "raised", ok=False))
            raise
        trace.stages.append(Stage(name, time.perf_counter() - start, out, summarize(out)))
        return out

    return wrapper


def _fail(trace: Trace, stage: str, exc: BaseException, roots: tuple[Path, ...]) -> Trace:
    failed = next((s.name for s in reversed(trace.stages) if not s.ok), stage)
    cause = exc.__cause__ if isinstance(exc, HandlerError) and exc.__cause__ is not None else exc
    trace.failure = Failure(
        failed,
        type(cause).__name__,
        str(exc) if isinstance(exc, HandlerError) else str(cause),
        locate(cause, roots),
        "".join(traceback.format_exception(cause)),
        cause,
    )
    return trace


def check_batch_result(result: Any, batch: int) -> str | None:
    """TorchServe's batch contract: a list with one answer per request. None when it holds."""
    if not isinstance(result, list):
        return (
            f"handle returned a {type(result).__name__}, not a list: TorchServe needs a list with one answer per "
            f"request (batch of {batch}). Wrap it: return [answer] (or one item per request)."
        )
    if len(result) != batch:
        return (
            f"handle returned a list of {len(result)} for a batch of {batch}: TorchServe fails such a batch with "
            "'number of batch response mismatched'. Return exactly one answer per request in data."
        )
    return None


def _collect(trace: Trace, context: Context, processors: list[Any]) -> None:
    """What the handler left on its Context: metrics, streamed chunks, per-request statuses and headers."""
    trace.metrics = list(context.metrics.records)
    trace.intermediate = list(context.intermediate_responses)  # type: ignore[attr-defined]
    trace.responses = [
        ResponseSettings(p.get_response_status_code(), p.get_response_status_phrase(), dict(p.get_response_headers()))
        for p in processors
    ]


def dry_run(
    handler: str,
    model_dir: str | Path,
    requests: list[Request],
    *,
    model_name: str,
    manifest: JsonObject | None,
    model_yaml_config: JsonObject | None = None,
    handler_dir: Path | None = None,
    system_properties: JsonObject | None = None,
) -> Trace:
    """Load ``handler`` from ``model_dir`` and run one batch of ``requests`` through it.

    ``handler_dir`` is searched before the model dir (a ``%%handler`` cell is saved in the
    notebook's workspace, not in the user's model folder). ``system_properties`` overrides the
    Context's (a replay passes the served worker's). Never raises for a handler problem: the
    failure is in ``Trace.failure`` with the stage, the exception and the handler line.
    """
    root = Path(model_dir).resolve()
    roots = (root,) if handler_dir is None else (handler_dir.resolve(), root)
    data, processors, ids = batch_of(requests)
    # TorchServe reports the registered batch size; a larger test batch stands for a larger registration.
    configured = (model_yaml_config or {}).get("batchSize", 1)
    batch_size = max(configured if isinstance(configured, int) else 1, len(requests))
    context = Context(model_name, str(root), manifest, batch_size, None, model_yaml_config=model_yaml_config)
    context.system_properties.update(system_properties or {})
    context.intermediate_responses = []  # type: ignore[attr-defined]
    trace = Trace(
        handler,
        model_name,
        dict(context.system_properties),
        manifest,
        context.model_yaml_config,
        data,
        [r.headers for r in requests],
        ids,
    )
    with ts_compat(), dirs_on_path(*roots), _working_dir(root):
        try:
            entry = _load(trace, handler, roots, context)
        except BaseException as exc:
            return _fail(trace, "initialize", exc, roots)
        context.request_ids = ids
        context.request_processor = processors
        context.metrics.set_request_ids(ids)
        handle = _record(trace, "handle", entry.handle) if entry.kind == "function" else entry.handle
        try:
            trace.result = handle(data, context)
        except BaseException as exc:
            return _fail(trace, "handle", exc, roots)
        finally:
            _collect(trace, context, processors)
    problem = check_batch_result(trace.result, len(requests))
    if problem is not None:
        trace.failure = Failure("handle", "BatchContractError", problem, None, "")
    return trace


def _load(trace: Trace, handler: str, roots: tuple[Path, ...], context: Context) -> EntryPoint:
    start = time.perf_counter()
    module = import_handler_module(handler, *roots)
    entry = _resolve(handler, module)
    trace.entry_kind = entry.kind
    if entry.instance is not None:
        for name in STAGES:
            method = getattr(entry.instance, name, None)
            if callable(method):
                setattr(entry.instance, name, _record(trace, name, method))
        if not callable(getattr(entry.instance, "initialize", None)):
            raise HandlerError(f"class {entry.name} has no initialize(context) method; TorchServe calls it at load.")
    _record(trace, "initialize", entry.initialize)(context)
    trace.stages[-1].seconds = time.perf_counter() - start  # loading counts as part of initialize
    return entry
