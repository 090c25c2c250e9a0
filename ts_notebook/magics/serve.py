"""``%ts_serve``: its parser (the help is generated from it) and one method per subcommand.

Each subcommand parses, makes one core call (launcher, session, client, serving views) and returns
a value that renders itself. ``-h`` at any level prints help and returns; it never raises.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any, NoReturn

from IPython.core.error import UsageError

from ts_notebook.preview import guess_text_type


class _HelpShown(Exception):
    """argparse printed help (``-h``) and wanted to exit; the magic returns instead."""


class UsageParser(argparse.ArgumentParser):
    """Argument errors become UsageError (message, no traceback); ``-h`` returns instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}\n{self.format_usage()}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if status == 0:
            raise _HelpShown
        raise UsageError(message or f"{self.prog}: exit {status}")


def parse_or_help(parser: argparse.ArgumentParser, line: str) -> argparse.Namespace | None:
    """Parse a magic's line split like a POSIX shell; None when ``-h`` printed the help."""
    try:
        return parser.parse_args(shlex.split(line))
    except _HelpShown:
        return None


def _start_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-store", metavar="DIR", help="folder of archives (default: .ts_notebook/model_store)")
    p.add_argument("--models", nargs="+", default=[], metavar="NAME=PATH", help="archives to load at start")
    p.add_argument("--gpus", metavar="IDS", help="GPU ids to use, e.g. 0,1 ('none' for CPU only)")
    p.add_argument("--workers", type=int, metavar="N", help="workers per start-up model (default: one per CPU)")
    p.add_argument("--ts-config", metavar="FILE", help="a TorchServe config.properties")
    p.add_argument("--detach", action="store_true", help="keep running after this kernel exits")
    p.add_argument("--no-token", action="store_true", help="serve without token authorization")
    p.add_argument("--replace", action="store_true", help="stop this notebook's running backend and start anew")
    p.add_argument(
        "--torchserve", action="store_true", help="run real TorchServe (Java; from TS_NOTEBOOK_TORCHSERVE or PATH)"
    )
    p.add_argument("--timeout", type=float, default=120.0, metavar="S", help="seconds to wait for it to serve")


def _register_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="the archive (.mar, .tar.gz or a no-archive folder)")
    p.add_argument("--name", help="model name (default: the archive's)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="workers to start (default 1)")
    p.add_argument("--batch-size", type=int, metavar="B", help="requests per batch (default: the archive's, or 1)")
    p.add_argument("--max-batch-delay", type=int, metavar="MS", help="longest wait for a batch to fill, in ms")
    p.add_argument("--response-timeout", type=int, metavar="S", help="seconds before a busy worker is killed")


def _to_pytest_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--to-pytest", metavar="FILE", help="write NAME's recorded requests as a pytest module FILE")
    p.add_argument("--last", type=int, metavar="N", help="with --to-pytest: only the newest N (default: all kept)")
    p.add_argument("--url", metavar="URL", help="with --to-pytest: send the requests to this served URL")
    p.add_argument("--model-path", metavar="PATH", help="with --to-pytest: replay through this archive or folder")
    p.add_argument("--rtol", type=float, metavar="R", help="with --to-pytest: relative tolerance of floats (1e-05)")
    p.add_argument("--atol", type=float, metavar="A", help="with --to-pytest: absolute tolerance of floats (1e-08)")


def _model_args(p: argparse.ArgumentParser, version_help: str) -> None:
    p.add_argument("name", help="model name")
    p.add_argument("version", nargs="?", help=version_help)


def build_parser() -> UsageParser:
    p = UsageParser(prog="%ts_serve", description="Start, watch and drive a serving backend from the notebook.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=UsageParser)
    _start_options(sub.add_parser("start", help="start (or reuse) a backend", description="Start a backend."))
    sub.add_parser("stop", help="stop the backend", description="Stop this notebook's backend.")
    sub.add_parser("status", help="addresses, models, workers, tokens and curl lines")
    _register_options(sub.add_parser("register", help="register an archive"))
    _model_args(sub.add_parser("unregister", help="unregister a model (or one version)"), "only this version")
    _model_args(sub.add_parser("describe", help="a model's description, as the management API gives it"), "or all")
    setdef = sub.add_parser("set-default", help="make VERSION the version that /predictions/NAME serves")
    setdef.add_argument("name", help="model name")
    setdef.add_argument("version", help="the version to serve by default")
    scale = sub.add_parser("scale", help="set a model's workers")
    scale.add_argument("name", help="model name")
    scale.add_argument("--min-workers", type=int, required=True, metavar="N", help="workers to keep")
    scale.add_argument("--max-workers", type=int, metavar="M", help="upper bound (default: N)")
    pred = sub.add_parser("predict", help="send one request; returns the decoded answer")
    pred.add_argument("name", help="model name")
    pred.add_argument("payload", nargs="?", help="the body, or @FILE for a file's bytes")
    pred.add_argument("--version", help="model version (default: the default version)")
    pred.add_argument("--content-type", metavar="CT", help="default: JSON if the body parses, else text/plain")
    reload = sub.add_parser("reload", help="serve a rebuilt archive's code with zero failed requests")
    reload.add_argument("name", help="model name")
    reload.add_argument("path", nargs="?", help="the archive (default: the one the model was registered from)")
    reload.add_argument("--version", help="model version (default: the default version)")
    reqs = sub.add_parser("requests", help="recent served requests, with ids to replay")
    reqs.add_argument("name", nargs="?", help="only this model's")
    reqs.add_argument("--failed", action="store_true", help="only the failed ones")
    reqs.add_argument("--limit", type=int, default=20, metavar="N", help="how many (default 20)")
    _to_pytest_options(reqs)
    replay = sub.add_parser("replay", help="re-run a served request in this kernel, as a dry-run trace")
    replay.add_argument("request_id", help="an id from %%ts_serve requests")
    replay.add_argument("--handler", metavar="NAME", help="run handler cell NAME instead of the served code")
    replay.add_argument("--alone", action="store_true", help="replay only this request, not its whole batch")
    replay.add_argument("--debug", action="store_true", help="open the debugger where the handler raised")
    timings = sub.add_parser("timings", help="p50/p99 of each stage of recent requests, per model")
    timings.add_argument("name", nargs="?", help="only this model")
    metrics = sub.add_parser("metrics", help="the Prometheus metrics, of one model if NAME is given")
    metrics.add_argument("name", nargs="?", help="only this model's samples")
    sub.add_parser("client", help="the Python client of this notebook's backend (every API, tokens set)")
    dash = sub.add_parser("dashboard", help="a live view of models, requests, logs, with a try-it form")
    dash.add_argument("--interval", type=float, default=1.0, metavar="S", help="seconds between updates")
    logs = sub.add_parser("logs", help="handler log lines and worker events")
    logs.add_argument("name", nargs="?", help="only this model's lines")
    logs.add_argument("--tail", type=int, default=50, metavar="N", help="how many lines (default 50)")
    return p


SERVE_PARSER = build_parser()


def full_help(parser: argparse.ArgumentParser) -> str:
    """The parser's help followed by every subcommand's, for ``%ts_serve?``."""
    parts = [parser.format_help()]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            parts += [sub.format_help() for sub in action.choices.values()]
    return "\n".join(parts)


def post_mortem(trace: Any) -> bool:
    """Open IPython's debugger at the frame that raised in a failed trace; False when nothing raised."""
    failure = trace.failure
    exc = failure.exception if failure is not None else None
    if exc is None or exc.__traceback__ is None:
        return False
    from IPython.core.debugger import Pdb

    debugger = Pdb()
    debugger.reset()
    debugger.interaction(None, exc.__traceback__)
    return True


def _local_model(spec: str) -> str:
    """``NAME=PATH`` with PATH made absolute when it names a file or folder here (the notebook's folder);
    otherwise as given, which the backend looks up in the model store as TorchServe does."""
    name, sep, path = spec.rpartition("=")
    if path and not Path(path).is_absolute() and Path(path).exists():
        return f"{name}{sep}{Path(path).resolve()}"
    return spec


class ServeCommands:
    """The subcommands of ``%ts_serve``; mixed into the magics class, which owns ``session``."""

    session: Any
    workspace: Any

    def _backend(self) -> Any:
        tracked = self.session.current()
        if tracked is None:
            raise UsageError("no backend is running for this notebook: run %ts_serve start first")
        return tracked.info

    def _serve_start(self, args: Any) -> Any:
        from ts_notebook import launcher
        from ts_notebook.serving import ServeStatus
        from ts_notebook.session import BackendRunning

        store = Path(args.model_store) if args.model_store else self.workspace.root / "model_store"
        store.mkdir(parents=True, exist_ok=True)
        spec = launcher.LaunchSpec(
            store.resolve(),
            [_local_model(m) for m in args.models],
            Path(args.ts_config) if args.ts_config else None,
            args.gpus,
            args.workers,
            not args.no_token,
            args.detach,
            "torchserve" if args.torchserve else "embedded",
        )
        try:
            outcome = self.session.start(spec, replace=args.replace, timeout=args.timeout)
        except BackendRunning as exc:
            raise UsageError(
                f"{exc}. It keeps running: %ts_serve start --replace ... stops it and starts the new one, "
                "or %ts_serve stop first."
            ) from None
        if isinstance(outcome, launcher.Failed):
            raise UsageError(
                f"the backend did not start: {outcome.reason}\n--- its output ---\n{outcome.output[-3000:]}"
            )
        if isinstance(outcome, launcher.TimedOut):
            raise UsageError(
                f"the backend did not answer within {outcome.seconds:.0f} s; it was stopped. "
                f"Its output:\n{outcome.output[-3000:]}"
            )
        engine = "real TorchServe " if args.torchserve else ""
        if isinstance(outcome, launcher.Started):
            note = f"{engine}started in {outcome.seconds:.2f} s" + ("" if args.detach else " (stops with this kernel)")
        else:
            note = f"reusing the running {'TorchServe' if args.torchserve else 'backend'} (pid {outcome.info.pid})"
        return ServeStatus.of(outcome.info, note)

    def _serve_stop(self, args: Any) -> str:
        from ts_notebook.errors import BackendError

        try:
            info = self.session.stop()
        except BackendError as exc:
            raise UsageError(f"{exc}: nothing to stop") from None
        return f"stopped backend pid {info.pid}"

    def _serve_status(self, args: Any) -> Any:
        from ts_notebook.serving import ServeStatus

        return ServeStatus.of(self._backend())

    def _embedded(self, what: str) -> Any:
        """The backend, when it is the embedded one; real TorchServe keeps no record of its requests."""
        info = self._backend()
        if not info.embedded:
            raise UsageError(
                f"{what} needs the embedded backend: real TorchServe keeps no record of served requests or stage "
                "timings and has no hot reload. Start it with %ts_serve start --replace (without --torchserve); for "
                "TorchServe, register the rebuilt archive as a new version and %ts_serve set-default it."
            )
        return info

    def _serve_register(self, args: Any) -> str:
        path = Path(args.path)
        if not path.exists():
            raise UsageError(f"{args.path}: no such archive. Build one with %mar_build.")
        info = self._backend()
        url = str(path.resolve())
        if not info.embedded:  # TorchServe registers only what is in its model store
            from ts_notebook.deploy.launch import stage

            url = stage(Path(str(info.model_store)), url)
        client = info.client()
        return str(
            client.register(
                url,
                model_name=args.name,
                initial_workers=args.workers,
                batch_size=args.batch_size,
                max_batch_delay=args.max_batch_delay,
                response_timeout=args.response_timeout,
            )
        )

    def _serve_unregister(self, args: Any) -> str:
        return str(self._backend().client().unregister(args.name, args.version))

    def _serve_describe(self, args: Any) -> Any:
        return self._backend().client().describe(args.name, args.version)

    def _serve_set_default(self, args: Any) -> str:
        return str(self._backend().client().set_default(args.name, args.version))

    def _serve_scale(self, args: Any) -> str:
        return str(self._backend().client().scale(args.name, args.min_workers, args.max_workers))

    def _serve_metrics(self, args: Any) -> Any:
        from ts_notebook.serving import MetricsText

        return MetricsText.of(self._backend().client(), args.name)

    def _serve_reload(self, args: Any) -> str:
        from ts_notebook.client import ServerError
        from ts_notebook.live import reload_failed

        url = str(Path(args.path).resolve()) if args.path else None
        if args.path and not Path(args.path).exists():
            raise UsageError(f"{args.path}: no such archive. Build one with %mar_build.")
        try:
            report = self._embedded("%ts_serve reload").client().reload(args.name, url, version=args.version)
        except ServerError as exc:
            if exc.kind != "ReloadFailedException":
                raise
            raise UsageError(str(reload_failed(exc))) from None
        return str(report.status)

    def _serve_requests(self, args: Any) -> Any:
        from ts_notebook.serving import RequestList

        if args.to_pytest:
            return self._requests_to_pytest(args)
        extra = [o for o in ("last", "url", "model_path", "rtol", "atol") if getattr(args, o) is not None]
        if extra:
            raise UsageError(f"--{extra[0].replace('_', '-')} goes with --to-pytest FILE")
        client = self._embedded("%ts_serve requests").client()
        return RequestList(client.requests(args.name, failed=args.failed, limit=args.limit))

    def _requests_to_pytest(self, args: Any) -> Any:
        from urllib.parse import urlsplit

        from ts_notebook import golden
        from ts_notebook.compare import ATOL, RTOL

        if not args.name:
            raise UsageError("--to-pytest FILE needs the model NAME: %ts_serve requests NAME --to-pytest FILE")
        info = self._embedded("%ts_serve requests --to-pytest")
        # The backend's token goes to its own address only, never to another server's URL.
        own = args.url and urlsplit(args.url).netloc == urlsplit(str(info.inference_address)).netloc
        try:
            return golden.write_tests(
                info.client(),
                args.name,
                args.to_pytest,
                failed=args.failed,
                last=args.last,
                url=args.url,
                model_path=args.model_path,
                model_store=info.model_store,
                key_file=info.key_file if own else None,
                rtol=RTOL if args.rtol is None else args.rtol,
                atol=ATOL if args.atol is None else args.atol,
            )
        except golden.GoldenError as exc:
            raise UsageError(str(exc)) from None

    def _serve_replay(self, args: Any) -> Any:
        from ts_notebook.replay import replay

        handler_dir = None
        if args.handler:
            if args.handler not in self.workspace.handlers:
                raise UsageError(f"--handler {args.handler}: no %%handler {args.handler} cell has run in this notebook")
            handler_dir = self.workspace.handlers[args.handler].parent
        result = replay(
            self._embedded("%ts_serve replay").client(),
            args.request_id,
            handler=args.handler,
            handler_dir=handler_dir,
            alone=args.alone,
        )
        if args.debug and not post_mortem(result.trace):
            print("nothing raised in the replay: no debugger to open")
        return result

    def _serve_timings(self, args: Any) -> Any:
        from ts_notebook.serving import TimingsView

        return TimingsView(self._embedded("%ts_serve timings").client().timings(args.name))

    def _serve_predict(self, args: Any) -> Any:
        payload: bytes | str = args.payload or ""
        if isinstance(payload, str) and payload.startswith("@"):
            file = Path(payload[1:])
            if not file.is_file():
                raise UsageError(f"{payload}: no such file to send.")
            payload = file.read_bytes()
        content_type = args.content_type
        if content_type is None and isinstance(payload, str):
            content_type = guess_text_type(payload)
        answer = self._backend().client().predict(args.name, payload, version=args.version, content_type=content_type)
        return answer.value

    def _serve_client(self, args: Any) -> Any:
        return self._backend().client()

    def _serve_dashboard(self, args: Any) -> Any:
        from ts_notebook.widgets.dashboard import ServingDashboard

        return ServingDashboard(self._backend().client(), interval=args.interval)

    def _serve_logs(self, args: Any) -> Any:
        from ts_notebook.serving import LogView

        info = self._backend()
        if not info.embedded:
            return LogView.of_files(Path(str(info.log_dir)), args.name, args.tail)
        return LogView.of(info.client(), args.name, args.tail)
