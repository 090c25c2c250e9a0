"""Registered models: names, versions, the default version, settings from ``model-config.yaml`` and
the API, and registration from the model store or a local path (URLs only if ``allowed_urls``
match). The registry never sees workers: each version's serving state is its dispatcher's."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ts_notebook.archive.extract import extract_cached, model_root
from ts_notebook.archive.folder import model_config
from ts_notebook.archive.manifest import MANIFEST_PATH
from ts_notebook.backend.api_error import ApiError, not_found, version_not_found
from ts_notebook.errors import TsNotebookError
from ts_notebook.jsontypes import JsonObject


@dataclass(frozen=True)
class Serving:
    """What describe shows of a version's serving state: its workers as TorchServe lists them, and how
    many requests wait."""

    workers: list[JsonObject]
    queue: int


@dataclass
class Settings:
    """Per-version settings with TorchServe's defaults."""

    min_workers: int = 1
    max_workers: int = 1
    batch_size: int = 1
    max_batch_delay: int = 100
    response_timeout: int = 120
    startup_timeout: int = 120
    max_retry_timeout: int = 300  # seconds below minWorkers before /ping says Unhealthy
    device_type: str = ""
    device_ids: list[int] = field(default_factory=list)
    job_queue_size: int = 100
    client_timeout_ms: int = 0  # clientTimeoutInMills: a request not answered by then is dropped (0: never)
    # Sequence batching (stateful models): a sequence's requests all go to one worker, in order.
    sequence_batching: bool = False
    max_num_sequence: int | None = None  # open sequences at once (TorchServe: 1 when stateful)
    max_sequence_job_queue_size: int | None = None  # waiting requests per sequence (TorchServe: 1)
    sequence_max_idle_ms: int = 0  # an idle sequence closes after this long (0: never)
    sequence_timeout_ms: int = 0  # a sequence closes this long after it opened (0: never)

    @property
    def sequences_allowed(self) -> int:
        return self.max_num_sequence if self.max_num_sequence is not None else int(self.sequence_batching)

    @property
    def sequence_queue_size(self) -> int:
        given = self.max_sequence_job_queue_size
        return given if given is not None else int(self.sequence_batching)

    @classmethod
    def from_yaml(cls, data: JsonObject, default_response_timeout: int, job_queue_size: int) -> Settings:
        s = cls(response_timeout=default_response_timeout, job_queue_size=job_queue_size)
        for key, attr in (
            ("minWorkers", "min_workers"),
            ("maxWorkers", "max_workers"),
            ("batchSize", "batch_size"),
            ("maxBatchDelay", "max_batch_delay"),
            ("responseTimeout", "response_timeout"),
            ("startupTimeout", "startup_timeout"),
            ("maxRetryTimeoutInSec", "max_retry_timeout"),
            ("jobQueueSize", "job_queue_size"),
            ("clientTimeoutInMills", "client_timeout_ms"),
            ("maxNumSequence", "max_num_sequence"),
            ("maxSequenceJobQueueSize", "max_sequence_job_queue_size"),
            ("sequenceMaxIdleMSec", "sequence_max_idle_ms"),
            ("sequenceTimeoutMSec", "sequence_timeout_ms"),
        ):
            if isinstance(data.get(key), int) and not isinstance(data.get(key), bool):
                setattr(s, attr, data[key])
        if isinstance(data.get("sequenceBatching"), bool):
            s.sequence_batching = data["sequenceBatching"]
        if isinstance(data.get("deviceType"), str):
            s.device_type = data["deviceType"].lower()
        if isinstance(data.get("deviceIds"), list):
            s.device_ids = [int(i) for i in data["deviceIds"]]
        return s


@dataclass
class ModelVersion:
    name: str
    version: str
    url: str
    model_dir: Path
    manifest: JsonObject
    yaml_config: JsonObject
    settings: Settings
    loaded_at_startup: bool = False
    removed: bool = False

    def describe(self, serving: Serving) -> JsonObject:
        """TorchServe's describe entry, with the workers and queue from the dispatcher's snapshot."""
        s = self.settings
        return {
            "modelName": self.name,
            "modelVersion": self.version,
            "modelUrl": self.url,
            "runtime": self.manifest.get("runtime", "python"),
            "minWorkers": s.min_workers,
            "maxWorkers": s.max_workers,
            "batchSize": s.batch_size,
            "maxBatchDelay": s.max_batch_delay,
            "responseTimeout": s.response_timeout,
            "startupTimeout": s.startup_timeout,
            "maxRetryTimeoutInSec": s.max_retry_timeout,
            "clientTimeoutInMills": s.client_timeout_ms,
            "parallelType": "",
            "parallelLevel": 0,
            "deviceType": s.device_type or "cpu",
            "continuousBatching": False,
            "useJobTicket": False,
            "useVenv": False,
            "stateful": s.sequence_batching,
            "sequenceMaxIdleMSec": s.sequence_max_idle_ms,
            "sequenceTimeoutMSec": s.sequence_timeout_ms,
            "maxNumSequence": s.sequences_allowed,
            "maxSequenceJobQueueSize": s.sequence_queue_size,
            "loadedAtStartup": self.loaded_at_startup,
            "workers": serving.workers,
            "jobQueueStatus": {
                "remainingCapacity": max(0, s.job_queue_size - serving.queue),
                "pendingRequests": serving.queue,
            },
        }


class Registry:
    """Models by name, each with versions and a default version."""

    def __init__(self, model_store: Path | None, cache: Path, allowed_urls: list[str]) -> None:
        self.model_store = model_store
        self.cache = cache
        self.allowed_urls = allowed_urls
        self.models: dict[str, dict[str, ModelVersion]] = {}
        self.defaults: dict[str, str] = {}

    def resolve_source(self, url: str) -> Path:
        """Where an archive named in a registration lives on this machine.

        Raises:
            ApiError: 400 for a URL not allowed (we never download), 404 for a missing archive.
        """
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", url) and not url.startswith("file://"):
            if not any(re.fullmatch(p, url) for p in self.allowed_urls):
                raise ApiError(
                    400,
                    "DownloadArchiveException",
                    f"Failed to download archive from: {url} (URLs are refused unless allowed_urls "
                    "matches them; copy the archive into the model store instead)",
                )
            raise ApiError(
                400,
                "DownloadArchiveException",
                f"Failed to download archive from: {url} (this backend never downloads models)",
            )
        if ".." in url:  # TorchServe's rule, before anything is looked up
            raise ApiError(404, "ModelNotFoundException", f"Relative path is not allowed in url: {url}")
        candidate = Path(url.removeprefix("file://"))
        if not candidate.is_absolute():
            if self.model_store is None:
                raise ApiError(404, "ModelNotFoundException", f"Model not found at: {url}")
            # TorchServe looks a relative url up in the store by its last part ("a/b" is the store's "b").
            candidate = self.model_store / candidate.name
        if not candidate.exists():
            raise ApiError(404, "ModelNotFoundException", f"Model not found at: {url}")
        if not (candidate.is_file() or candidate.is_dir()):  # a device, FIFO or socket: never read
            raise ApiError(
                400, "ModelException", f"{url} is not a regular file or folder: give a .mar, .tar.gz or model folder"
            )
        return candidate

    def load(
        self,
        url: str,
        *,
        model_name: str | None,
        settings_overrides: dict[str, int],
        default_response_timeout: int,
        job_queue_size: int,
    ) -> ModelVersion:
        """Extract (once per content) and read an archive into a new, not yet registered version."""
        source = self.resolve_source(url)
        try:
            model_dir = extract_cached(source, self.cache)
        except TsNotebookError as exc:
            raise ApiError(400, "ModelException", str(exc)) from exc
        model_dir = model_root(model_dir)
        manifest_file = model_dir / MANIFEST_PATH
        manifest: JsonObject = {}
        if manifest_file.is_file():
            try:
                manifest = json.loads(manifest_file.read_text())
            except (ValueError, UnicodeDecodeError) as exc:
                raise ApiError(400, "ModelException", f"{url}: {MANIFEST_PATH} is not valid JSON ({exc})") from exc
            if not isinstance(manifest, dict):
                raise ApiError(400, "ModelException", f"{url}: {MANIFEST_PATH} is not a JSON object")
        model = manifest.setdefault("model", {})
        name = model_name or model.get("modelName")
        if not name:
            raise ApiError(400, "InvalidModelException", "Model name is not defined.")
        version = str(model.get("modelVersion") or "1.0")
        yaml_config = model_config(model_dir, manifest)
        settings = Settings.from_yaml(yaml_config, default_response_timeout, job_queue_size)
        for attr, value in settings_overrides.items():
            setattr(settings, attr, value)
        return ModelVersion(name, version, url, model_dir, manifest, yaml_config, settings)

    def add(self, mv: ModelVersion) -> None:
        versions = self.models.setdefault(mv.name, {})
        if mv.version in versions:
            raise ApiError(
                409, "ConflictStatusException", f"Model version {mv.version} is already registered for model {mv.name}"
            )
        versions[mv.version] = mv
        self.defaults.setdefault(mv.name, mv.version)

    def get(self, name: str, version: str | None = None) -> ModelVersion:
        versions = self.models.get(name)
        if not versions:
            raise not_found(name)
        key = version or self.defaults[name]
        if key not in versions:
            raise version_not_found(name, key)
        return versions[key]

    def remove(self, name: str, version: str | None) -> ModelVersion:
        mv = self.get(name, version)
        versions = self.models[name]
        if version is not None and version == self.defaults[name] and len(versions) > 1:
            raise ApiError(403, "InvalidModelVersionException", f"Cannot remove default version for model {name}")
        del versions[mv.version]
        mv.removed = True
        if not versions:
            del self.models[name]
            del self.defaults[name]
        elif self.defaults[name] == mv.version:
            self.defaults[name] = next(iter(versions))
        return mv

    def all_versions(self) -> list[ModelVersion]:
        return [mv for versions in self.models.values() for mv in versions.values()]
