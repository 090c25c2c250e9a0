"""Pictures of where a request's time went: a stage bar per request, and latency over time per model
(inline SVG, so they show in JupyterLab, in a saved notebook and in the HTML fallback alike)."""

from __future__ import annotations

from ts_notebook.records import ServedRequest
from ts_notebook.widgets._base import esc

COLORS = {
    "queue": "#8c959f",
    "transport": "#54aeff",
    "preprocess": "#2da44e",
    "inference": "#fb8f44",
    "postprocess": "#a475f9",
    "handle": "#1b7c83",
}


def stage_bar(stages: dict[str, float], width: int = 160, height: int = 10) -> str:
    """One request's latency as a bar: a segment per stage, as wide as its share; the rest is other time."""
    total = stages.get("latency") or sum(v for k, v in stages.items() if k in COLORS) or 1.0
    x = 0.0
    parts = []
    for name, color in COLORS.items():
        ms = stages.get(name)
        if not ms:
            continue
        w = max(1.0, width * ms / total)
        tip = f"<title>{name} {ms:.3f} ms</title>"
        parts.append(f"<rect x='{x:.1f}' width='{w:.1f}' height='{height}' fill='{color}'>{tip}</rect>")
        x += w
    title = ", ".join(f"{k} {v:.2f} ms" for k, v in stages.items())
    return (
        f"<svg class='tsn-stage-bar' width='{width}' height='{height}' role='img' aria-label='{esc(title)}'>"
        f"<rect width='{width}' height='{height}' fill='#eaeef2'/>{''.join(parts)}</svg>"
    )


def legend() -> str:
    return " ".join(f"<span style='color:{c}'>&#9632;</span>&nbsp;{n}" for n, c in COLORS.items())


def latency_plot(events: list[ServedRequest], start: float, end: float, width: int = 320, height: int = 70) -> str:
    """Latency (ms) of each request over [start, end] as dots, failures in red, with the axis maximum."""
    if not events:
        return ""
    top = max(e.latency_ms for e in events) or 1.0
    span = max(1e-6, end - start)
    dots = []
    for e in events:
        x = 4 + (width - 8) * (e.time - start) / span
        y = height - 12 - (height - 20) * e.latency_ms / top
        color = "#cf222e" if e.failed else "#0969da"
        dots.append(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='2' fill='{color}'/>")
    return (
        f"<svg class='tsn-latency-plot' width='{width}' height='{height}' role='img' aria-label='latency over time'>"
        f"<rect width='{width}' height='{height}' fill='#f6f8fa'/>"
        f"<text x='4' y='10' font-size='9' fill='#57606a'>{top:.1f} ms</text>"
        f"<text x='4' y='{height - 2}' font-size='9' fill='#57606a'>last {span:.0f} s</text>{''.join(dots)}</svg>"
    )
