"""What an export wrote, what it chose and why, what will break in the target, and how to run it.

The value of ``%ts_export`` and ``ts_notebook.deploy.export``; it also lands in the folder as
``DEPLOY.md`` so the choices travel with the files.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Choice:
    """One setting the export wrote: its value and why that value."""

    setting: str
    value: str
    why: str


@dataclass(frozen=True)
class ExportReport:
    target: str  # "torchserve" | "kserve" | "ray"
    folder: Path
    model: str
    files: tuple[str, ...] = ()  # relative to folder
    choices: tuple[Choice, ...] = ()
    warnings: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def to_markdown(self) -> str:
        lines = [f"# {self.model} for {self.target}", "", "Written by ts_notebook's export.", "", "## Files", ""]
        lines += [f"- `{name}`" for name in self.files]
        lines += ["", "## Settings chosen", "", "| setting | value | why |", "|---|---|---|"]
        lines += [f"| {c.setting} | `{c.value}` | {c.why} |" for c in self.choices]
        if self.warnings:
            lines += ["", "## What will break in the target", ""] + [f"- {w}" for w in self.warnings]
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        lines += ["", "## Run it", "", "```sh", *self.commands, "```", ""]
        return "\n".join(lines)

    def to_text(self) -> str:
        lines = [f"exported {self.model} for {self.target} to {self.folder}"]
        lines += [f"  {name}" for name in self.files]
        lines.append("settings:")
        width = max((len(c.setting) for c in self.choices), default=0)
        lines += [f"  {c.setting:<{width}}  {c.value}  ({c.why})" for c in self.choices]
        lines += [f"WARNING: {w}" for w in self.warnings]
        lines += [f"note: {n}" for n in self.notes]
        lines.append("run it:")
        lines += [f"  {c}" for c in self.commands]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(c.setting)}</td><td><code>{html.escape(c.value)}</code></td>"
            f"<td>{html.escape(c.why)}</td></tr>"
            for c in self.choices
        )
        warn = "".join(f"<p style='color:#cf222e'><b>warning</b>: {html.escape(w)}</p>" for w in self.warnings)
        notes = "".join(f"<p>{html.escape(n)}</p>" for n in self.notes)
        files = "".join(f"<li><code>{html.escape(f)}</code></li>" for f in self.files)
        cmds = html.escape("\n".join(self.commands))
        return (
            f"<div class='tsn-export'><p>exported <b>{html.escape(self.model)}</b> for <b>{self.target}</b> to "
            f"<code>{html.escape(str(self.folder))}</code></p><ul>{files}</ul><table><thead><tr><th>setting</th>"
            f"<th>value</th><th>why</th></tr></thead><tbody>{rows}</tbody></table>{warn}{notes}<pre>{cmds}</pre></div>"
        )
