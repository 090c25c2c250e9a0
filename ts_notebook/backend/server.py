"""The backend process: binds the three HTTP ports, starts the zygote and worker pool, loads the
start-up models, and writes ``backend.json`` (addresses, pid, key file) only once it serves."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from ts_notebook import __version__
from ts_notebook.backend import inference_api, management_api
from ts_notebook.backend.config import Config
from ts_notebook.backend.dispatcher import Dispatcher
from ts_notebook.backend.events import EventLog
from ts_notebook.backend.generations import read_generation
from ts_notebook.backend.httpkit import Keys, gate
from ts_notebook.backend.info import INFO_FILE, BackendInfo
from ts_notebook.backend.ipc import private_folder
from ts_notebook.backend.lifeline import Lifeline
from ts_notebook.backend.metrics import Metrics
from ts_notebook.backend.pool import WorkerLoadError, WorkerPool, Zygote
from ts_notebook.backend.registry import ModelVersion, Registry
from ts_notebook.backend.replay import RequestRing
from ts_notebook.doctor import doctor_lines
from ts_notebook.handler.metrics_api import MetricRecord
from ts_notebook.jsontypes import JsonObject
from ts_notebook.records import LogLine, Swap, WorkerChange


class Backend:
    """One serving backend and everything it owns."""

    def __init__(self, config: Config, zygote: Zygote | None = None) -> None:
        self.config = config
        if config.run_dir is None:  # set by from_args; a Backend built in code must name one
            raise ValueError("Config.run_dir is not set: give the backend a private run folder")
        self.run_dir = config.run_dir
        self.events = EventLog()
        self.metrics = Metrics(config.metrics_mode, config.model_metrics_auto_detect, config.metrics_config)
        self.registry = Registry(config.model_store, self.run_dir / "models", config.allowed_urls)
        self.zygote = zygote or Zygote(self.run_dir)
        self.zygote.on_refused = self._refused
        self.pool = WorkerPool(
            self.run_dir,
            self.zygote,
            self,
            config.gpus,
            self._planned,
            config.ts_notebook_stage_timings,
            str(config.metrics_config) if config.metrics_config else None,
            config.service_envelope,
        )
        self.dispatchers: dict[tuple[str, str], Dispatcher] = {}
        self.requests = RequestRing(config.ts_notebook_replay_count, config.ts_notebook_replay_body_bytes)
        self.keys: Keys | None = None
        self.addresses: dict[str, str] = {}
        self._runners: list[web.AppRunner] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self.stopped = asyncio.Event()
        self.failed_models: dict[str, str] = {}
        self.load_failures: dict[tuple[str, str], str] = {}  # (model, version) -> why its workers did not load

    # -- the EventSink the pool and the dispatchers report to ---------------------------------------
    def on_worker(self, change: WorkerChange) -> None:
        if change.status == "READY":
            name = f"W-{change.worker}-{change.model}_{change.version}"
            self.metrics.worker_loaded(name, change.load_ms or 0.0)
        self.events.add(change)

    def on_swap(self, swap: Swap) -> None:
        self.events.add(swap)

    def on_log(self, line: LogLine) -> None:
        self.events.add(line)

    def on_metric(self, model: str, version: str, record: MetricRecord) -> None:
        self.metrics.handler_metric(record)

    def _refused(self, where: str) -> None:
        message = f"refused a connection to {where} that did not prove it is one of this backend's own processes"
        self.events.add(LogLine(time.time(), "WARNING", message, "backend"))

    def background(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def openapi(self, which: str) -> JsonObject:
        paths = {
            "inference": [
                "/",
                "/ping",
                "/predictions/{model_name}",
                "/predictions/{model_name}/{model_version}",
                "/explanations/{model_name}",
                "/v1/models/{model_name}:predict",
                "/v2/models/{model_name}/infer",
                "/{model_name}/predict",
                "/invocations",
                "/api-description",
            ],
            "management": [
                "/",
                "/models",
                "/models/{model_name}",
                "/models/{model_name}/{model_version}",
                "/models/{model_name}/{model_version}/set-default",
                "/ts_notebook/events",
                "/ts_notebook/workers",
                "/ts_notebook/requests",
                "/ts_notebook/requests/{request_id}",
                "/ts_notebook/timings",
                "/ts_notebook/models/{model_name}/reload",
                "/ts_notebook/models/{model_name}/handler",
            ],
        }[which]
        return {
            "openapi": "3.0.1",
            # TorchServe's own info block (clients key on its title); who really answers is said apart.
            "info": {
                "title": "TorchServe APIs",
                "description": "TorchServe is a flexible and easy to use tool for serving deep learning models",
                "version": "0.12.0",
            },
            "x-server": {"name": "ts_notebook embedded backend", "version": __version__},
            "paths": {p: {} for p in paths},
        }

    def load_model(self, url: str, model_name: str | None, overrides: dict[str, int]) -> ModelVersion:
        return self.registry.load(
            url,
            model_name=model_name,
            settings_overrides=overrides,
            default_response_timeout=self.config.default_response_timeout,
            job_queue_size=self.config.job_queue_size,
        )

    async def register(self, mv: ModelVersion) -> Dispatcher:
        """Add ``mv`` to the registry with a dispatcher serving its archive's generation (no workers yet).

        Raises:
            ApiError: 409 when that version is registered already.
        """
        self.registry.add(mv)
        try:
            # The extraction cache named the folder by the archive's content hash: that is its id.
            generation = await asyncio.to_thread(read_generation, mv.model_dir, mv.model_dir.name[:10])
        except BaseException:
            self.registry.remove(mv.name, mv.version)
            raise
        dispatcher = Dispatcher(mv, generation, self.pool, self)
        self.dispatchers[(mv.name, mv.version)] = dispatcher
        return dispatcher

    def dispatcher(self, mv: ModelVersion) -> Dispatcher:
        return self.dispatchers[(mv.name, mv.version)]

    def _planned(self) -> int:
        """How many workers all models are meant to have (what the cores are shared among)."""
        return sum(max(d.target, d.live_count()) for d in self.dispatchers.values())

    async def scale(self, mv: ModelVersion, target: int) -> None:
        """Bring ``mv`` to ``target`` workers: fork new ones in parallel, or drain the extra ones.

        Raises:
            WorkerLoadError: a worker did not load; its message ends with the doctor's top findings
                (also kept in ``load_failures`` for the notebook until the version loads or goes).
        """
        try:
            await self.dispatcher(mv).scale(target)
        except WorkerLoadError as exc:
            doctor = await asyncio.to_thread(doctor_lines, mv.model_dir, exc.failure, mv.settings.startup_timeout)
            self.load_failures[(mv.name, mv.version)] = f"{exc}{doctor}"
            raise WorkerLoadError(f"{exc}{doctor}", exc.failure) from exc
        self.load_failures.pop((mv.name, mv.version), None)

    async def retire(self, mv: ModelVersion) -> None:
        self.load_failures.pop((mv.name, mv.version), None)
        dispatcher = self.dispatchers.pop((mv.name, mv.version), None)
        if dispatcher is not None:
            await dispatcher.retire()
            await dispatcher.close()
        if mv.name not in self.registry.models:
            self.requests.forget(mv.name)

    def healthy(self) -> bool:
        """TorchServe's /ping rule: Unhealthy once a model's default version has had fewer live workers
        than its minWorkers for longer than its maxRetryTimeoutInSec."""
        now = time.monotonic()
        results = [self.dispatcher(self.registry.get(name)).healthy(now) for name in self.registry.defaults]
        return all(results)

    async def _serve(self, name: str, address: str, routes: list[web.RouteDef], key: str | None) -> None:
        count = None if name == "metrics_address" else self.metrics.http_status
        middlewares: list[Any] = [gate(key, ("/api-description",), count)]
        app = web.Application(middlewares=middlewares, client_max_size=self.config.max_request_size)
        app.add_routes(routes)
        runner = web.AppRunner(app, access_log=None, keepalive_timeout=self.config.ts_notebook_header_timeout)
        await runner.setup()
        host, port = Config.host_port(address)
        site = web.TCPSite(runner, host, port, reuse_address=False)
        await site.start()
        server: Any = site._server
        sockets = server.sockets if server is not None else []
        bound = sockets[0].getsockname()[1] if sockets else port
        self.addresses[name] = f"http://{host}:{bound}"
        self._runners.append(runner)

    async def _metrics_routes(self) -> list[web.RouteDef]:
        async def metrics(request: web.Request) -> web.Response:
            body = self.metrics.render(request.query.getall("name[]", []))
            return web.Response(body=body, headers={"Content-Type": self.metrics.content_type})

        return [web.get("/metrics", metrics)]

    async def start(self) -> None:
        private_folder(self.run_dir)
        if not self.config.disable_token_authorization:
            self.keys = Keys.create(self.run_dir)
        await self.zygote.start()
        await self.pool.start()
        keys = self.keys
        await self._serve(
            "inference_address",
            self.config.inference_address,
            inference_api.routes(self),
            keys.inference if keys else None,
        )
        await self._serve(
            "management_address",
            self.config.management_address,
            management_api.routes(self),
            keys.management if keys else None,
        )
        await self._serve("metrics_address", self.config.metrics_address, await self._metrics_routes(), None)
        await self._load_startup_models()
        self._write_info()

    async def _load_startup_models(self) -> None:
        specs = list(self.config.models)
        if specs == ["all"] and self.config.model_store is not None:
            specs = [p.name for p in sorted(self.config.model_store.iterdir()) if not p.name.startswith(".")]
        for spec in specs:
            name, sep, url = spec.partition("=")
            name, url = (name, url) if sep else (None, spec)  # type: ignore[assignment]
            try:
                mv = await asyncio.to_thread(self.load_model, url, name or None, {})
                mv.loaded_at_startup = True
                await self.register(mv)
                count = mv.yaml_config.get("minWorkers")
                count = count if isinstance(count, int) else self.config.default_workers_per_model
                mv.settings.min_workers = mv.settings.max_workers = count
                await self.scale(mv, count)
            except Exception as exc:  # a bad start-up model must not stop the others
                self.failed_models[spec] = str(exc)
                line = LogLine(time.time(), "ERROR", f"Failed to load {spec}: {exc}", "backend", name or url)
                self.events.add(line)

    def _write_info(self) -> None:
        BackendInfo(
            pid=os.getpid(),
            run_dir=self.run_dir,
            inference_address=self.addresses["inference_address"],
            management_address=self.addresses["management_address"],
            metrics_address=self.addresses["metrics_address"],
            key_file=self.run_dir / "key_file.json" if self.keys else None,
            model_store=str(self.config.model_store) if self.config.model_store else None,
            started=time.time(),
            version=__version__,
            failed_models=dict(self.failed_models),
        ).write()

    def hard_stop(self) -> None:
        """A stop that ran out of time: no record left behind, no worker or zygote left running."""
        (self.run_dir / INFO_FILE).unlink(missing_ok=True)
        for worker in list(self.pool.workers.values()):
            worker.kill()
        process = self.zygote.process
        if process is not None and process.poll() is None:
            process.kill()

    async def stop(self) -> None:
        (self.run_dir / INFO_FILE).unlink(missing_ok=True)
        for runner in self._runners:
            await runner.cleanup()
        await self.pool.close()
        for dispatcher in self.dispatchers.values():
            await dispatcher.close()
        await self.zygote.stop()
        for name in ("zygote.sock", "workers.sock"):
            (self.run_dir / name).unlink(missing_ok=True)
        self.stopped.set()


async def run(config: Config, zygote: Zygote | None = None) -> None:
    backend = Backend(config, zygote)
    stop = asyncio.Event()
    Lifeline(asyncio.get_running_loop(), stop, backend.hard_stop).start(config.parent_pid)
    try:
        await backend.start()
        print(json.dumps({"event": "serving", **backend.addresses}), flush=True)
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await backend.stop()
