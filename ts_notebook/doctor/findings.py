"""What the doctor reports: findings (cause, evidence, fix), and a report that renders them as a
table in text and HTML, or says ``ok``."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

# The causes TorchServe users meet most (pytorch/serve issues), by the number the doctor gives them.
CAUSES: dict[int, str] = {
    1: "handler import error (TorchServe shows it as a missing ts.torch_handler module)",
    2: "helper module not packaged",
    3: "requirements not installed",
    4: "file missing from the archive",
    5: "not exactly one class",
    6: "weights do not match the packaging",
    7: "initialize too slow",
    8: "name, version or model store clash",
    9: "model-config.yaml problem",
    10: "environment cannot run it",
    11: "deployment settings block it",
    12: "not enough memory",
}


@dataclass(frozen=True)
class Place:
    """Where a finding points: a file, a line in it, and the code or value seen there."""

    file: str | None = None
    line: int | None = None
    evidence: str = ""


@dataclass(frozen=True)
class Finding:
    """One cause found: how sure (``error`` stops the load, ``warning`` may), where, and what to change."""

    cause: int
    summary: str
    fix: str
    evidence: str = ""
    file: str | None = None
    line: int | None = None
    severity: str = "error"

    @classmethod
    def at(cls, place: Place, cause: int, summary: str, fix: str, severity: str = "error") -> Finding:
        """A finding pointing at ``place`` (its file, line and evidence)."""
        return cls(cause, summary, fix, place.evidence, place.file, place.line, severity)

    @property
    def title(self) -> str:
        return CAUSES[self.cause]

    @property
    def where(self) -> str:
        if self.file is None:
            return ""
        return f"{self.file}:{self.line}" if self.line else self.file

    def text(self) -> str:
        parts = [f"[{self.severity}] #{self.cause} {self.title}: {self.summary}"]
        if self.where or self.evidence:
            parts.append(f"    evidence: {' '.join(p for p in (self.where, self.evidence) if p)}")
        parts.append(f"    fix: {self.fix}")
        return "\n".join(parts)


@dataclass(repr=False)
class Report:
    """Every finding for one archive (errors first), plus what was checked."""

    source: str
    findings: list[Finding] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    initialize_seconds: float | None = None

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def causes(self) -> set[int]:
        return {f.cause for f in self.findings}

    def add(self, finding: Finding) -> None:
        """Keep ``finding`` unless one of the same cause at the same place is there (static and run
        checks often see one problem twice)."""
        same = [
            f for f in self.findings if f.cause == finding.cause and (f.file, f.line) == (finding.file, finding.line)
        ]
        if not same or (finding.line is None and finding not in self.findings):
            self.findings.append(finding)

    def sorted(self) -> list[Finding]:
        return sorted(self.findings, key=lambda f: (f.severity != "error", f.cause))

    def top(self, n: int = 3) -> list[Finding]:
        return self.sorted()[:n]

    def text(self) -> str:
        if self.ok:
            return f"{self.source}: ok ({', '.join(self.checked)} checked)"
        lines = [f"{self.source}: {len(self.errors)} error(s), {len(self.findings) - len(self.errors)} warning(s)"]
        lines += [f.text() for f in self.sorted()]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    __repr__ = __str__

    def _repr_html_(self) -> str:
        head = f"<b>{html.escape(self.source)}</b>: "
        if self.ok:
            return head + f"<span style='color:green'>ok</span> ({html.escape(', '.join(self.checked))} checked)"
        rows = "".join(
            "<tr>"
            + "".join(
                f"<td style='text-align:left;vertical-align:top'>{html.escape(v)}</td>"
                for v in (
                    f.severity,
                    f"#{f.cause} {f.title}",
                    f.summary,
                    " ".join(p for p in (f.where, f.evidence) if p),
                    f.fix,
                )
            )
            + "</tr>"
            for f in self.sorted()
        )
        header = "".join(f"<th style='text-align:left'>{h}</th>" for h in ("", "cause", "what", "evidence", "fix"))
        return f"{head}{len(self.errors)} error(s)<table><tr>{header}</tr>{rows}</table>"
