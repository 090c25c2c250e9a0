"""``%mar_inspect``'s report: the archive, what would stop it loading, and what was extracted or
exported. Answers "why won't it load?" before a server is started.
"""

from __future__ import annotations

import html
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ts_notebook.archive.checks import (
    BUILTIN_HANDLERS,
    check_config_file,
    check_handler_source,
    check_model_file,
)
from ts_notebook.archive.export import ExportResult
from ts_notebook.archive.read import ArchiveInfo, read_member
from ts_notebook.errors import ArchiveError


def diagnose(info: ArchiveInfo) -> tuple[str, ...]:
    """Problems that would make TorchServe 0.12 refuse the archive or fail its first worker."""
    m = info.manifest
    problems: list[str] = []
    if m.source == "missing":
        problems.append(
            "no MAR-INF/MANIFEST.json: TorchServe cannot tell which handler to run. Rebuild with %mar_build."
        )
        return tuple(problems)
    for label, name in (
        ("serializedFile", m.serialized_file),
        ("modelFile", m.model_file),
        ("requirementsFile", m.requirements_file),
        ("configFile", m.config_file),
    ):
        if name and name not in info.names:
            problems.append(f"manifest names {label} {name!r} but the archive has no such file.")
    problems.extend(_handler_problems(info))
    with tempfile.TemporaryDirectory(prefix="ts_notebook-check-") as tmp:
        for name, check in ((m.model_file, check_model_file), (m.config_file, check_config_file)):
            data = read_member(info, name) if name else None
            if name and data is not None:
                path = Path(tmp) / name
                path.write_bytes(data)
                try:
                    check(path)
                except ArchiveError as exc:
                    problems.append(str(exc).replace(str(path), name))
    return tuple(problems)


def _handler_problems(info: ArchiveInfo) -> list[str]:
    handler = info.manifest.handler
    if not handler:
        return ["manifest has no handler: TorchServe does not know what code to run."]
    module, _, function = handler.partition(":")
    module = module.removesuffix(".py")
    if module in BUILTIN_HANDLERS:
        return []
    data = read_member(info, f"{module}.py")
    if data is None:
        return [
            f"handler {handler!r}: no {module}.py in the archive and not a built-in handler; TorchServe's "
            "worker will fail with ModuleNotFoundError."
        ]
    with tempfile.TemporaryDirectory(prefix="ts_notebook-check-") as tmp:
        path = Path(tmp) / f"{module}.py"
        path.write_bytes(data)
        try:
            check_handler_source(path, function or None)
        except ArchiveError as exc:
            return [str(exc).replace(str(path), path.name)]
    return []


@dataclass(frozen=True)
class InspectReport:
    """An archive's description plus diagnosis and what ``--extract`` / ``--export-model`` did."""

    info: ArchiveInfo
    problems: tuple[str, ...]
    extracted: Path | None = None
    exported: ExportResult | None = None

    @classmethod
    def of(
        cls, info: ArchiveInfo, *, extracted: Path | None = None, exported: ExportResult | None = None
    ) -> InspectReport:
        return cls(info, diagnose(info), extracted, exported)

    def _footer(self) -> list[str]:
        lines = [f"problem: {p}" for p in self.problems] or ["no problems found"]
        if self.extracted is not None:
            lines.append(f"extracted to {self.extracted}")
        if self.exported is not None:
            lines.append(repr(self.exported))
        return lines

    def __repr__(self) -> str:
        return "\n".join([self.info.to_text(), *self._footer()])

    def _repr_html_(self) -> str:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in self._footer())
        return f"<div class='tsn-inspect'>{self.info._repr_html_()}<ul>{items}</ul></div>"
