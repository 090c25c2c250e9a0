"""The load-failure doctor: why a model archive will not load in TorchServe, and what to change.

``diagnose(path)`` reads the archive (safe extraction into a temporary folder), checks it without running
it (imports, file names, classes, model-config.yaml, requirements, environment, settings, memory, the
model store), then loads it in a fresh subprocess the way a TorchServe worker does and runs
``initialize`` under the startup time limit. Every finding is kept, not only the first.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ts_notebook.doctor.classify import from_failure
from ts_notebook.doctor.findings import CAUSES, Finding, Place, Report
from ts_notebook.doctor.probe import MARK, ProbeResult
from ts_notebook.doctor.settings import (
    config_findings,
    deployment_findings,
    environment_findings,
    memory_findings,
    model_config,
    naming_findings,
    requirement_findings,
    requirement_names,
)
from ts_notebook.doctor.static import (
    archive_files,
    handler_file,
    import_findings,
    manifest_findings,
    model_class_findings,
    path_findings,
)
from ts_notebook.jsontypes import JsonObject
from ts_notebook.properties import read_properties

__all__ = ["CAUSES", "Finding", "Report", "diagnose", "doctor_lines", "explain_failure", "static_findings"]
_SLACK = 60.0  # seconds beyond the time limit for the probe's own start (importing torch)


def _manifest(model_dir: Path) -> JsonObject:
    path = model_dir / "MAR-INF" / "MANIFEST.json"
    try:
        loaded = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (ValueError, UnicodeDecodeError):
        return {"model": {}, "_invalid": True}
    return loaded if isinstance(loaded, dict) else {"model": {}}


def static_findings(
    model_dir: Path, props: dict[str, str] | None = None, *, available_memory: int | None = None
) -> list[Finding]:
    """Everything reading the extracted model folder shows (no code of it runs)."""
    props = props or {}
    manifest = _manifest(model_dir)
    files = archive_files(model_dir)
    config = model_config(model_dir, manifest)
    handler = handler_file(model_dir, manifest)
    sources = [handler, *(p for p in model_dir.glob("*.py") if p != handler)] if handler else []
    found = manifest_findings(model_dir, manifest, files)
    found += import_findings(model_dir, sources, requirement_names(model_dir))
    found += path_findings(model_dir, handler, files) if handler else []
    found += model_class_findings(model_dir, manifest)
    found += config_findings(model_dir, manifest, props)
    found += requirement_findings(model_dir, props)
    found += environment_findings(config)
    if available_memory is None:
        import psutil

        available_memory = int(psutil.virtual_memory().available)
    found += memory_findings(model_dir, manifest, config, available_memory)
    return found


def _probe(model_dir: Path, limit: float) -> ProbeResult:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    cmd = [sys.executable, "-m", "ts_notebook.doctor.probe", str(model_dir), str(limit)]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=limit + _SLACK, check=False, cwd=model_dir
        )
    except subprocess.TimeoutExpired:
        return ProbeResult("timeout", initialize_seconds=limit)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARK):
            return ProbeResult.from_json(line[len(MARK) :])
    return ProbeResult("error", "import", type="ProbeDied", message=(proc.stderr or proc.stdout)[-1500:])


def _run_findings(model_dir: Path, limit: float, report: Report) -> None:
    manifest = _manifest(model_dir)
    handler = str((manifest.get("model") or {}).get("handler") or "")
    probe = _probe(model_dir, limit)
    report.initialize_seconds = probe.initialize_seconds
    for finding in from_failure(probe, handler, archive_files(model_dir), limit):
        report.add(finding)
    source = handler_file(model_dir, manifest)
    if probe.mapping_none and source is not None and "mapping" in source.read_text(errors="replace"):
        report.add(
            Finding(
                4,
                "the label map stayed None: the handler's labels will be missing",
                'add index_to_name.json with --extra-files (a {"0": "label"} map)',
                "self.mapping is None after initialize",
                source.name,
                severity="warning",
            )
        )
    report.checked.append(f"initialize ({probe.outcome})")


def diagnose(
    source: str | Path,
    *,
    ts_config: str | Path | None = None,
    time_limit: float | None = None,
    store: str | Path | None = None,
    registered: set[tuple[str, str]] | None = None,
    available_memory: int | None = None,
    run: bool = True,
) -> Report:
    """Every reason ``source`` (a .mar, .tar.gz or model folder) would not load in TorchServe, with fixes.

    ``ts_config`` is the config.properties it will be served with (its deployment settings are then
    checked too); ``time_limit`` defaults to the archive's startupTimeout (120 s); ``store`` and
    ``registered`` (name, version) pairs let it spot model-store clashes.
    """
    from ts_notebook.archive.extract import extract_archive, model_root
    from ts_notebook.errors import TsNotebookError

    path = Path(source)
    report = Report(str(path))
    props = read_properties(Path(ts_config)) if ts_config else {}
    with tempfile.TemporaryDirectory(prefix="ts-doctor-") as tmp:
        try:
            model_dir = model_root(extract_archive(path, Path(tmp) / "model"))
        except (TsNotebookError, OSError) as exc:
            report.add(Finding(4, "the archive cannot be read", "rebuild it with %mar_build", str(exc)))
            return report
        manifest = _manifest(model_dir)
        for finding in static_findings(model_dir, props, available_memory=available_memory):
            report.add(finding)
        model = manifest.get("model") or {}
        names = naming_findings(
            str(model.get("modelName") or path.stem),
            str(model.get("modelVersion") or "1.0"),
            Path(store) if store else None,
            path,
            registered or set(),
        )
        for finding in names + (deployment_findings(props) if ts_config else []):
            report.add(finding)
        report.checked += ["manifest", "imports", "files", "model-config.yaml", "requirements", "environment"]
        if run and not any(f.cause == 4 and "MANIFEST" in (f.file or "") for f in report.errors):
            limit = time_limit or _startup_timeout(model_config(model_dir, manifest))
            _run_findings(model_dir, limit, report)
    return report


def _startup_timeout(config: JsonObject) -> float:
    value = config.get("startupTimeout")
    return float(value) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 120.0


def explain_failure(
    model_dir: Path, error: str, where: str | None, traceback_text: str, limit: float = 120.0
) -> list[Finding]:
    """The doctor's findings for a load that already failed in a worker (no second run): the static
    checks, then the worker's exception classified."""
    kind, _, message = error.partition(": ")
    # a worker's Where reads "file, line N, in function: code"
    place = re.match(r"^(.*?), line (\d+)", where or "")
    file, line = (place[1], place[2]) if place else ("", "")
    probe = ProbeResult(
        "error",
        "initialize",
        type=kind,
        message=message,
        traceback=traceback_text,
        where=Place(file, int(line)) if place else None,
        missing_module=_missing_module(message),
    )
    manifest = _manifest(model_dir)
    handler = str((manifest.get("model") or {}).get("handler") or "")
    report = Report(str(model_dir))
    for finding in static_findings(model_dir, available_memory=1 << 62) + from_failure(
        probe, handler, archive_files(model_dir), limit
    ):
        report.add(finding)
    return report.sorted()


def doctor_lines(model_dir: Path, failure: Any, limit: float = 120.0, top: int = 3) -> str:
    """The doctor's top findings for a worker's load failure, as lines to append to the error message
    (empty when there is nothing to add). ``failure`` has error, where and traceback."""
    if failure is None:
        return ""
    try:
        found = explain_failure(model_dir, failure.error, failure.where, failure.traceback, limit)
    except Exception as exc:  # never let the diagnosis hide the failure it explains
        return f"\nDoctor: could not examine the model ({type(exc).__name__}: {exc})"
    return "".join(f"\nDoctor: #{f.cause} {f.title}: {f.summary}. Fix: {f.fix}" for f in found[:top])


def _missing_module(message: str) -> str | None:
    marker = "No module named '"
    return message.split(marker, 1)[1].split("'", 1)[0] if marker in message else None
