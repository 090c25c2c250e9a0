"""Turn what went wrong when a model was loaded (the probe's outcome, or a worker's load failure) into
findings: the cause, its evidence, and the change that fixes it."""

from __future__ import annotations

import re
from pathlib import Path

from ts_notebook.doctor.findings import Finding, Place
from ts_notebook.doctor.probe import ProbeResult

MASK = "TorchServe reports this as \"No module named 'ts.torch_handler.{module}'\" and hides the real error"


def _where(probe: ProbeResult) -> Place:
    where = probe.where
    if where is None:
        return Place()
    return Place(Path(where.file or "").name, where.line, where.evidence.strip())


def from_failure(probe: ProbeResult, handler: str, files: set[str], limit: float) -> list[Finding]:
    """Findings for a failed load: ``probe`` has outcome, type, message, traceback, where, stage."""
    outcome = probe.outcome
    if outcome == "timeout":
        took = limit if probe.initialize_seconds is None else probe.initialize_seconds
        return [
            Finding(
                7,
                f"initialize did not finish in {limit:g} s (TorchServe's startupTimeout)",
                "raise startupTimeout in model-config.yaml (TorchServe's default is 120 s), or make initialize "
                "faster: load once, lazily, or from a smaller file",
                f"still running after {took:.1f} s",
            )
        ]
    if outcome != "error":
        return []
    kind, message, where = probe.type, probe.message, _where(probe)
    module = handler.split(":", 1)[0].removesuffix(".py")
    for rule in (_import_error, _one_class, _weights, _files, _memory, _device):
        found = rule(kind, message, probe, where, module, files)
        if found:
            return found
    return [
        Finding.at(
            where,
            1 if probe.stage == "import" else 6 if "load" in message.lower() else 1,
            f"{probe.stage} raised {kind}: {message.splitlines()[0] if message else ''}",
            "fix the line shown; the dry run (%%handler ... --test) runs it with the same Context",
        )
    ]


def _import_error(
    kind: str, message: str, probe: ProbeResult, where: Place, module: str, files: set[str]
) -> list[Finding]:
    if kind not in ("ModuleNotFoundError", "ImportError"):
        return []
    missing = (probe.missing_module or "").split(".")[0]
    first = message.splitlines()[-1][:200] if message else kind  # the innermost error: the real one
    first = first.removeprefix(f"{kind}: ")
    out = [
        Finding.at(
            where,
            1,
            f"importing the handler raised {kind}: {first}",
            MASK.format(module=module) + "; fix the import shown here",
        )
    ]
    if missing and f"{missing}.py" not in files:
        out.append(
            Finding(
                2,
                f"{missing} is not in the archive and not installed",
                f"if {missing}.py is your module: --extra-files {missing}.py; if it is a package: pip "
                "install it (and list it in requirements.txt)",
                f"import {missing}",
                where.file,
                where.line,
            )
        )
    return out


def _one_class(
    kind: str, message: str, probe: ProbeResult, where: Place, module: str, files: set[str]
) -> list[Finding]:
    if "only one class" not in message and "one class" not in message:
        return []
    return [
        Finding.at(
            where,
            5,
            message.splitlines()[0],
            "keep one class in the handler module (import helpers from another "
            "file given with --extra-files), or name the entry point: --handler file.py:function",
        )
    ]


def _weights(kind: str, message: str, probe: ProbeResult, where: Place, module: str, files: set[str]) -> list[Finding]:
    weights = probe.weights
    text = message + probe.traceback
    if "Can't get attribute" in text or weights.kind == "pickled":
        cls = weights.cls or (re.findall(r"Can't get attribute '(\w+)'", text) or ["the model class"])[0]
        return [
            Finding(
                6,
                f"the serialized file is a pickled whole model; its class {cls} cannot be imported here",
                "save model.state_dict() instead and pass the class with --model-file, or package the "
                "module defining the class with --extra-files",
                f"{weights.file}: {cls}",
            )
        ]
    if "Missing key(s) in state_dict" in text or "size mismatch" in text or "Unexpected key(s)" in text:
        detail = next((ln.strip() for ln in text.splitlines() if "key(s)" in ln or "size mismatch" in ln), message)
        return [
            Finding(
                6,
                "the state_dict does not fit the model class",
                "build the archive with the model file the weights were saved from (same layers, same sizes)",
                detail[:300],
                weights.file or "",
            )
        ]
    if weights.kind == "torchscript" and ("constants.pkl" in text or "weights_only" in text or "jit" in text):
        return [
            Finding(
                6,
                "the serialized file is TorchScript but the archive has a --model-file, so it is loaded as eager",
                "rebuild without --model-file: TorchServe loads TorchScript with torch.jit.load",
                weights.file or "",
            )
        ]
    if weights.kind == "state_dict" and (
        "PytorchStreamReader" in text or "constants.pkl" in text or "jit" in text.lower()
    ):
        return [
            Finding(
                6,
                "the serialized file is a state_dict but the archive has no --model-file, so it is loaded as "
                "TorchScript",
                "rebuild with --model-file model.py (the file defining the model class)",
                weights.file or "",
            )
        ]
    return []


def _files(kind: str, message: str, probe: ProbeResult, where: Place, module: str, files: set[str]) -> list[Finding]:
    if kind not in ("FileNotFoundError", "IsADirectoryError", "NotADirectoryError"):
        return []
    name = (re.findall(r"'([^']+)'", message) or [""])[-1]
    hint = f"add it with --extra-files {Path(name).name}" if name else "add the file with --extra-files"
    if name.startswith("/"):
        hint += f" and open it as os.path.join(context.system_properties['model_dir'], '{Path(name).name}')"
    return [Finding.at(where, 4, f"initialize opens {name or 'a file'} that is not there", hint)]


def _memory(kind: str, message: str, probe: ProbeResult, where: Place, module: str, files: set[str]) -> list[Finding]:
    if kind not in ("MemoryError", "OutOfMemoryError") and "out of memory" not in message.lower():
        return []
    return [
        Finding(
            12,
            "the model does not fit in the memory available",
            "start fewer workers, load in half precision, or use a machine with more memory (TorchServe answers 507)",
            message[:200],
            where.file,
            where.line,
        )
    ]


def _device(kind: str, message: str, probe: ProbeResult, where: Place, module: str, files: set[str]) -> list[Finding]:
    if "CUDA" not in message and "cuda" not in message:
        return []
    return [
        Finding(
            10,
            "the handler needs CUDA, which this machine does not have",
            "choose the device from context.system_properties['gpu_id'] (None means CPU), as BaseHandler does",
            message[:200],
            where.file,
            where.line,
        )
    ]
