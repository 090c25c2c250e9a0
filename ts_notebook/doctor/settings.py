"""The doctor's checks of everything around the handler: model-config.yaml, requirements.txt, this
environment (device, torch, Python), TorchServe's deployment settings, memory, and the model store."""

from __future__ import annotations

import difflib
import importlib.metadata
import platform
from pathlib import Path
from typing import Any

import yaml

from ts_notebook.archive.checks import FRONTEND_CONFIG_KEYS, KNOWN_SECTIONS, MODEL_NAME_RE
from ts_notebook.doctor.findings import Finding
from ts_notebook.jsontypes import JsonObject

_KIND_WORDS: dict[type, str] = {
    int: "a whole number",
    bool: "true or false",
    str: "text",
    list: "a list",
    dict: "a mapping",
}


def model_config(model_dir: Path, manifest: JsonObject) -> JsonObject:
    name = (manifest.get("model") or {}).get("configFile")
    if not name or not (model_dir / name).is_file():
        return {}
    try:
        loaded = yaml.safe_load((model_dir / name).read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def config_findings(model_dir: Path, manifest: JsonObject, props: dict[str, str]) -> list[Finding]:
    """Every problem of model-config.yaml, not just the first (#9)."""
    name = (manifest.get("model") or {}).get("configFile")
    if not name or not (model_dir / name).is_file():
        return []
    try:
        data = yaml.safe_load((model_dir / name).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return [
            Finding(
                9,
                f"{name} is not valid YAML",
                "fix the YAML syntax at that line",
                str(exc).splitlines()[0],
                name,
                mark.line + 1 if mark else None,
            )
        ]
    out: list[Finding] = []
    for key, value in (data or {}).items() if isinstance(data, dict) else []:
        expected = FRONTEND_CONFIG_KEYS.get(key)
        if expected is None and not isinstance(value, dict) and key not in KNOWN_SECTIONS:
            close = difflib.get_close_matches(key, list(FRONTEND_CONFIG_KEYS), n=1)
            out.append(
                Finding(
                    9,
                    f"unknown key {key}: TorchServe ignores it",
                    f"rename it to {close[0]}" if close else "remove it, or move it under handler:",
                    f"{key}: {value!r}",
                    name,
                    severity="error" if close else "warning",
                )
            )
        elif expected is not None and (
            not isinstance(value, expected) or (expected is int and isinstance(value, bool))
        ):
            kinds = expected if isinstance(expected, tuple) else (expected,)
            kind = " or ".join(_KIND_WORDS.get(t, t.__name__) for t in kinds)
            out.append(
                Finding(
                    9,
                    f"{key} must be {kind}, not {type(value).__name__}",
                    f"write {key} as {kind} (numbers without quotes)",
                    f"{key}: {value!r}",
                    name,
                )
            )
    return out + _envelope_findings(data, props, name)


def _envelope_findings(data: Any, props: dict[str, str], name: str) -> list[Finding]:
    """KServe's v1/v2 envelopes answer one request per batch: batchSize must be 1 there (#9)."""
    out: list[Finding] = []
    batch = (data or {}).get("batchSize", 1) if isinstance(data, dict) else 1
    envelope = props.get("service_envelope", "")
    if envelope in ("kserve", "kservev2") and isinstance(batch, int) and batch > 1:
        out.append(
            Finding(
                9,
                f"batchSize {batch} with the {envelope} envelope: the envelope answers only the "
                "first request of a batch",
                "set batchSize: 1 for KServe's TorchServe runtime",
                f"batchSize: {batch}, service_envelope={envelope}",
                name,
            )
        )
    return out


def _requirements(model_dir: Path) -> list[str]:
    path = model_dir / "requirements.txt"
    if not path.is_file():
        return []
    lines = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    return [line for line in lines if line and not line.startswith("-")]


def requirement_names(model_dir: Path) -> set[str]:
    from packaging.requirements import InvalidRequirement, Requirement

    names = set()
    for line in _requirements(model_dir):
        try:
            names.add(Requirement(line).name.lower().replace("_", "-"))
        except InvalidRequirement:
            continue
    return names


def requirement_findings(model_dir: Path, props: dict[str, str]) -> list[Finding]:
    """requirements.txt ignored by TorchServe's default (#3), packages missing or at another version
    (#3), and a torch or Python that the requirements rule out (#10)."""
    from packaging.requirements import InvalidRequirement, Requirement

    lines = _requirements(model_dir)
    out: list[Finding] = []
    if lines and props.get("install_py_dep_per_model", "false").strip().lower() != "true":
        out.append(
            Finding(
                3,
                "TorchServe ignores the archive's requirements.txt unless install_py_dep_per_model=true",
                "add install_py_dep_per_model=true to config.properties, or install them in the server's environment",
                f"{len(lines)} requirement(s)",
                "requirements.txt",
                severity="warning",
            )
        )
    for line in lines:
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            out.append(
                Finding(
                    3, "a line pip cannot read", "write it as name==version", f"{line!r}: {exc}", "requirements.txt"
                )
            )
            continue
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            have = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            out.append(
                Finding(3, f"{req.name} is not installed here", f"pip install '{line}'", line, "requirements.txt")
            )
            continue
        if req.specifier and not req.specifier.contains(have, prereleases=True):
            cause = 10 if req.name.lower() == "torch" else 3
            out.append(
                Finding(
                    cause,
                    f"{req.name} {have} is installed, the archive asks for {req.specifier}",
                    f"install {req.name}{req.specifier} here, or relax the requirement",
                    line,
                    "requirements.txt",
                )
            )
    return out


def environment_findings(config: JsonObject) -> list[Finding]:
    """A device this machine does not have (#10)."""
    device = str(config.get("deviceType", "")).lower()
    if device != "gpu":
        return []
    try:
        import torch

        has_cuda = bool(torch.cuda.is_available())
    except ImportError:
        has_cuda = False
    if has_cuda:
        return []
    return [
        Finding(
            10,
            "deviceType: gpu, but this machine has no CUDA device: TorchServe runs it on the CPU instead",
            "use deviceType: cpu here (or leave it out: TorchServe picks the GPU when there is one)",
            f"deviceType: gpu, python {platform.python_version()}",
            "model-config.yaml",
            severity="warning",
        )
    ]


def deployment_findings(props: dict[str, str]) -> list[Finding]:
    """TorchServe 0.12's defaults (token authorization on, model API off) that break a setup (#11)."""
    out = []
    if props.get("enable_model_api", "false").strip().lower() != "true":
        out.append(
            Finding(
                11,
                "the model API is off (TorchServe's default since 0.11.1): POST /models is refused",
                "load the model at start (load_models=NAME.mar or --models), or set enable_model_api=true",
                "enable_model_api is not true",
                "config.properties",
                severity="warning",
            )
        )
    if props.get("disable_token_authorization", "false").strip().lower() != "true":
        out.append(
            Finding(
                11,
                "token authorization is on (the default): clients without the key get 400",
                "send 'Authorization: Bearer <key from key_file.json>', or set "
                "disable_token_authorization=true on a trusted network",
                "disable_token_authorization is not true",
                "config.properties",
                severity="warning",
            )
        )
    return out


def memory_findings(model_dir: Path, manifest: JsonObject, config: JsonObject, available: int) -> list[Finding]:
    """Weights times workers against the memory free now (#12)."""
    name = (manifest.get("model") or {}).get("serializedFile")
    if not name or not (model_dir / name).is_file():
        return []
    size = (model_dir / name).stat().st_size
    workers = config.get("minWorkers", 1) if isinstance(config.get("minWorkers"), int) else 1
    need = size * max(1, workers)
    if need <= 0.8 * available:
        return []
    return [
        Finding(
            12,
            f"{workers} worker(s) x {size / 2**20:.0f} MiB of weights need more memory than is free",
            "start fewer workers (minWorkers), load the weights in half precision, or free memory",
            f"{need / 2**20:.0f} MiB needed, {available / 2**20:.0f} MiB free",
            name,
        )
    ]


def naming_findings(
    name: str, version: str, store: Path | None, source: Path, registered: set[tuple[str, str]]
) -> list[Finding]:
    """The model-name rule, a version already registered, a leftover archive of the same name (#8)."""
    out = []
    if not MODEL_NAME_RE.match(name):
        out.append(
            Finding(
                8,
                f"model name {name!r} breaks TorchServe's URLs and its archiver's rule",
                "use letters, digits, '_', '-' and '.', starting with a letter or digit",
                name,
            )
        )
    if (name, version) in registered:
        out.append(
            Finding(
                8,
                f"{name} {version} is registered already: a second registration gets 409",
                f"unregister it first (DELETE /models/{name}/{version}), raise --version, or reload it",
                f"{name} {version}",
            )
        )
    for other in sorted(store.glob(f"{name}.*")) if store is not None and store.is_dir() else []:
        if other.resolve() != source.resolve() and other.suffix in (".mar", ".gz", ".tgz", ".zip"):
            out.append(
                Finding(
                    8,
                    f"the model store already holds {other.name}: url={other.name} loads that one",
                    "remove or rename the leftover, or build with -f into the store",
                    str(other),
                    severity="warning",
                )
            )
    return out
