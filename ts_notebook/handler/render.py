"""Text and HTML renderings of a trace (the fallbacks of its widget, and what nbval compares)."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from ts_notebook.handler.summary import summarize
from ts_notebook.preview import json_preview

if TYPE_CHECKING:
    from ts_notebook.handler.trace import Trace


def trace_text(t: Trace) -> str:
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
    data = "".join(f"<li><code>{html.escape(repr(row))}</code></li>" for row in t.data)
    return (
        f"<div class='tsn-trace'><b>handler {html.escape(t.handler)}</b> ({html.escape(t.entry_kind or 'not loaded')}) "
        f"for model <b>{html.escape(t.model_name)}</b>"
        f"<details><summary>context.system_properties</summary><pre>{html.escape(json_preview(t.system_properties))}</pre></details>"
        f"<details><summary>context.manifest</summary><pre>{html.escape(json_preview(t.manifest))}</pre></details>"
        f"<p>data ({len(t.data)} requests):</p><ol start='0'>{data}</ol>"
        f"{stage_rows_html(t)}{failure_html(t)}</div>"
    )
