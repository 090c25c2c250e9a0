"""IPython magics: parse the line, make one core call, return a value that renders itself.

Core errors (``TsNotebookError``) become ``UsageError`` here, so the user sees the message and no
traceback; anything unexpected keeps its traceback.
"""

from __future__ import annotations

import argparse
import functools
import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from ts_notebook.archive import ArchiveInfo, export_model, extract_archive, open_archive
from ts_notebook.archive.build import write_plan
from ts_notebook.archive.cli import archiver_parser, plan_from_args
from ts_notebook.archive.inspect import InspectReport
from ts_notebook.errors import TsNotebookError
from ts_notebook.handler.workspace import Workspace, requests_for_test

F = TypeVar("F", bound=Callable[..., Any])
PROGRESS_BAR_BYTES = 64 << 20  # smaller builds finish before a bar would be worth drawing


def _user_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TsNotebookError as exc:
            raise UsageError(str(exc)) from None

    return wrapper  # type: ignore[return-value]


class _UsageParser(argparse.ArgumentParser):
    """Argument errors become UsageError (message, no traceback) instead of exiting the kernel."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}\n{self.format_usage()}")


_MAR_BUILD_PARSER = archiver_parser(prog="%mar_build", parser_class=_UsageParser)


def _parse_archiver_line(line: str) -> Any:
    try:
        return _MAR_BUILD_PARSER.parse_args(shlex.split(line))
    except SystemExit:  # -h printed the help; nothing to build
        return None


def _guess_content_type(payload: str) -> str:
    import json

    try:
        json.loads(payload)
    except ValueError:
        return "text/plain"
    return "application/json"


def _serve_parser() -> argparse.ArgumentParser:
    p = _UsageParser(prog="%ts_serve", description="Drive the serving backend.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_UsageParser)
    start = sub.add_parser("start", help="start (or reuse) a backend")
    start.add_argument("--model-store", help="folder of archives (default: .ts_notebook/model_store)")
    start.add_argument("--models", nargs="+", default=[], help="NAME=PATH ... to load at start")
    start.add_argument("--gpus", help="GPU ids to use, e.g. 0,1 ('none' for CPU only)")
    start.add_argument("--workers", type=int, help="workers per start-up model (default: one per CPU)")
    start.add_argument("--ts-config", help="a TorchServe config.properties")
    start.add_argument("--detach", action="store_true", help="keep running after this kernel exits")
    start.add_argument("--no-token", action="store_true", help="serve without token authorization")
    start.add_argument("--torchserve", action="store_true", help="run real TorchServe instead (not available yet)")
    start.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for it to serve")
    sub.add_parser("stop", help="stop the backend")
    sub.add_parser("status", help="addresses, pid, models and workers")
    reg = sub.add_parser("register", help="register an archive")
    reg.add_argument("path")
    reg.add_argument("--name")
    reg.add_argument("--workers", type=int, default=1)
    reg.add_argument("--batch-size", type=int)
    reg.add_argument("--max-batch-delay", type=int)
    reg.add_argument("--response-timeout", type=int)
    unreg = sub.add_parser("unregister", help="unregister a model (or one version)")
    unreg.add_argument("name")
    unreg.add_argument("version", nargs="?")
    scale = sub.add_parser("scale", help="set a model's workers")
    scale.add_argument("name")
    scale.add_argument("--min-workers", type=int, required=True)
    scale.add_argument("--max-workers", type=int)
    pred = sub.add_parser("predict", help="send one request; returns the decoded answer")
    pred.add_argument("name")
    pred.add_argument("payload", nargs="?", help="the body, or @FILE")
    pred.add_argument("--version")
    pred.add_argument("--content-type")
    dash = sub.add_parser("dashboard", help="a live view of models, requests, logs, with a try-it form")
    dash.add_argument("--interval", type=float, default=1.0, help="seconds between updates")
    logs = sub.add_parser("logs", help="handler log lines and worker events")
    logs.add_argument("name", nargs="?")
    logs.add_argument("--tail", type=int, default=50)
    return p


_SERVE_PARSER = _serve_parser()


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"--header {text!r}: write it as NAME=VALUE, e.g. --header X-Mode=echo")
    return key, value


def _parse(magic: Any, line: str) -> Any:
    """Split like a POSIX shell, so quoted paths lose their quotes (IPython's default keeps them)."""
    return magic.parser.parse_args(shlex.split(line))


@contextmanager
def _progress(total: int, desc: str) -> Iterator[Callable[[int], None] | None]:
    if total < PROGRESS_BAR_BYTES:
        yield None
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, leave=False) as bar:

        def update(n: int) -> None:
            bar.update(n)

        yield update


@magics_class
class TsNotebookMagics(Magics):
    """The ts_notebook magics (``%%handler``, ``%mar_build``, ``%mar_inspect``)."""

    def __init__(self, shell: Any = None) -> None:
        super().__init__(shell)
        self._workspace: Workspace | None = None
        self._serving: Any = None  # the BackendInfo of the backend this kernel uses

    @property
    def workspace(self) -> Workspace:
        """The notebook's handler workspace, made in the current folder on first use."""
        if self._workspace is None:
            self._workspace = Workspace()
        return self._workspace

    @magic_arguments()
    @argument("name", help="Handler name: the file is NAME.py; %%mar_build --handler NAME packages it.")
    @argument("--model-dir", metavar="DIR", help="What the handler sees as model_dir (and its MAR-INF/MANIFEST.json).")
    @argument("--archive", metavar="PATH", help="Use this archive's contents as model_dir and its manifest.")
    @argument("--test", metavar="PAYLOAD", help="Run the handler in this kernel on this request body.")
    @argument("--test-file", metavar="PATH", help="Run the handler on the bytes of this file.")
    @argument("--content-type", help="Content type of the test request (default: JSON if it parses, else text/plain).")
    @argument("--header", action="append", default=[], metavar="K=V", help="Request header (repeatable).")
    @argument("--batch", type=int, default=1, metavar="N", help="Send the request N times as one batch.")
    @cell_magic
    @_user_errors
    def handler(self, line: str, cell: str) -> Any:
        """Write a TorchServe handler in a cell: check it, save it, and optionally dry-run it here.

        The cell is compiled (a syntax error names the cell line), its entry point resolved with
        TorchServe's rules, and it is saved as NAME.py in the notebook's workspace so that
        ``%mar_build --handler NAME`` packages it. With ``--test`` or ``--test-file`` it runs in this
        kernel against a TorchServe-style Context and returns a trace: the context and manifest it
        got, the exact ``data`` list, each stage's output and time, and on failure the exception
        with the handler line that raised. Re-running the cell reloads the handler.

        Example::

            %%handler tiny --archive tiny.mar --test '{"input": [1, 2, 3, 4]}' --batch 2
            from ts.torch_handler.base_handler import BaseHandler
            class TinyHandler(BaseHandler):
                ...
        """
        args = _parse(self.handler, line)
        saved = self.workspace.save(args.name, cell)
        if args.test is None and args.test_file is None:
            return saved
        headers = dict(_key_value(h) for h in args.header)
        requests = requests_for_test(args.test, args.test_file, args.content_type, headers, args.batch)
        target = self.workspace.model_dir(args.name, model_dir=args.model_dir, archive=args.archive)
        from ts_notebook.handler.trace import dry_run

        return dry_run(
            args.name,
            target.path,
            requests,
            model_name=target.model_name,
            manifest=target.manifest,
            model_yaml_config=target.model_yaml_config,
            handler_dir=saved.path.parent,
        )

    @line_magic
    @_user_errors
    def mar_build(self, line: str) -> ArchiveInfo | None:
        """Build a TorchServe model archive; same flags and meaning as torch-model-archiver 0.12.

        Everything is checked before anything is written; a failed build leaves nothing behind.
        Returns the archive's description (path, format, manifest, files with sizes).

        Example::

            %mar_build --model-name tiny --version 1.0 --model-file model.py \\
                --serialized-file tiny.pth --handler handler.py --extra-files index_to_name.json
        """
        args = _parse_archiver_line(line)
        if args is None:
            return None
        if self._workspace is not None:
            args.handler = self._workspace.resolve(args.handler)
        plan = plan_from_args(args)
        with _progress(plan.total_bytes, f"building {plan.target.name}") as bar:
            return write_plan(plan, bar)

    @magic_arguments()
    @argument("path", help="A .mar, .tar.gz or no-archive folder.")
    @argument("--extract", metavar="DIR", help="Also extract it safely into DIR (new or empty).")
    @argument("--export-model", metavar="OUT", help="Also export the model to OUT (.pt), verified to load.")
    @argument("--force", action="store_true", help="Overwrite OUT if it exists.")
    @line_magic
    @_user_errors
    def mar_inspect(self, line: str) -> InspectReport:
        """Show an archive's manifest and files, check it loads, and optionally extract it or export its model.

        Reads zip .mar, .tar.gz and no-archive folders, with current, legacy (MMS) or no manifest.
        Extraction refuses absolute paths, '..', links and decompression bombs.

        Example::

            %mar_inspect model_store/tiny.mar --export-model tiny.pt
        """
        args = _parse(self.mar_inspect, line)
        info = open_archive(args.path)
        extracted = extract_archive(args.path, args.extract) if args.extract else None
        exported = export_model(args.path, args.export_model, force=args.force) if args.export_model else None
        return InspectReport.of(info, extracted=extracted, exported=exported)

    @line_magic
    @_user_errors
    def ts_serve(self, line: str) -> Any:
        """Start, watch and drive a serving backend from the notebook.

        Subcommands::

            %ts_serve start [--model-store DIR] [--models NAME=PATH ...] [--gpus IDS] [--workers N]
                            [--ts-config FILE] [--detach] [--no-token] [--torchserve]
            %ts_serve status
            %ts_serve register PATH [--name NAME] [--workers N] [--batch-size B] [--max-batch-delay MS]
                               [--response-timeout S]
            %ts_serve unregister NAME [VERSION]
            %ts_serve scale NAME --min-workers N [--max-workers M]
            %ts_serve predict NAME [PAYLOAD | @FILE] [--version V] [--content-type CT]
            %ts_serve logs [NAME] [--tail N]
            %ts_serve dashboard [--interval S]
            %ts_serve stop

        ``start`` runs ts_notebook's embedded backend (pure Python, no Java) in a subprocess on
        127.0.0.1, or reuses the live one for the same store and settings; it stops with this
        kernel unless ``--detach``. ``predict`` returns the decoded answer.
        """
        args = _SERVE_PARSER.parse_args(shlex.split(line))
        return getattr(self, f"_serve_{args.command}")(args)

    def _backend(self) -> Any:
        from ts_notebook.launcher import BackendInfo

        info = self._serving
        if info is not None and BackendInfo.read(info.run_dir) is not None:
            return info
        raise UsageError("no backend is running for this notebook: run %ts_serve start first")

    def _serve_start(self, args: Any) -> Any:
        from ts_notebook import launcher
        from ts_notebook.serving import ServeStatus

        if args.torchserve:
            raise UsageError(
                "--torchserve (real TorchServe) is not available yet; %ts_serve start runs the embedded "
                "backend, and archives from %mar_build load unchanged in TorchServe"
            )
        store = Path(args.model_store) if args.model_store else self.workspace.root / "model_store"
        store.mkdir(parents=True, exist_ok=True)
        spec = launcher.LaunchSpec(
            store.resolve(),
            list(args.models),
            Path(args.ts_config) if args.ts_config else None,
            args.gpus,
            args.workers,
            not args.no_token,
            args.detach,
        )
        outcome = launcher.start(spec, timeout=args.timeout)
        if isinstance(outcome, launcher.Failed):
            raise UsageError(
                f"the backend did not start: {outcome.reason}\n--- its output ---\n{outcome.output[-3000:]}"
            )
        if isinstance(outcome, launcher.TimedOut):
            raise UsageError(
                f"the backend did not answer within {outcome.seconds:.0f} s; it was stopped. "
                f"Its output:\n{outcome.output[-3000:]}"
            )
        self._serving = outcome.info
        if isinstance(outcome, launcher.Started):
            note = f"started in {outcome.seconds:.2f} s" + ("" if args.detach else " (stops with this kernel)")
        else:
            note = f"reusing the running backend (pid {outcome.info.pid})"
        return ServeStatus.of(outcome.info, note)

    def _serve_stop(self, args: Any) -> str:
        from ts_notebook import launcher

        info = self._backend()
        gone = launcher.stop(info)
        self._serving = None
        if not gone:
            raise UsageError(f"backend pid {info.pid} did not stop; kill it with: kill -9 {info.pid}")
        return f"stopped backend pid {info.pid}"

    def _serve_status(self, args: Any) -> Any:
        from ts_notebook.serving import ServeStatus

        return ServeStatus.of(self._backend())

    def _serve_register(self, args: Any) -> str:
        path = Path(args.path)
        if not path.exists():
            raise UsageError(f"{args.path}: no such archive. Build one with %mar_build.")
        client = self._backend().client()
        return str(
            client.register(
                str(path.resolve()),
                model_name=args.name,
                initial_workers=args.workers,
                batch_size=args.batch_size,
                max_batch_delay=args.max_batch_delay,
                response_timeout=args.response_timeout,
            )
        )

    def _serve_unregister(self, args: Any) -> str:
        return str(self._backend().client().unregister(args.name, args.version))

    def _serve_scale(self, args: Any) -> str:
        return str(self._backend().client().scale(args.name, args.min_workers, args.max_workers))

    def _serve_predict(self, args: Any) -> Any:
        payload: bytes | str = args.payload or ""
        if isinstance(payload, str) and payload.startswith("@"):
            file = Path(payload[1:])
            if not file.is_file():
                raise UsageError(f"{payload}: no such file to send.")
            payload = file.read_bytes()
        content_type = args.content_type
        if content_type is None and isinstance(payload, str):
            content_type = _guess_content_type(payload)
        answer = self._backend().client().predict(args.name, payload, version=args.version, content_type=content_type)
        return answer.value

    def _serve_dashboard(self, args: Any) -> Any:
        from ts_notebook.widgets.dashboard import ServingDashboard

        return ServingDashboard(self._backend().client(), interval=args.interval)

    def _serve_logs(self, args: Any) -> Any:
        from ts_notebook.serving import LogView

        return LogView.of(self._backend().client(), args.name, args.tail)


TsNotebookMagics.mar_build.__doc__ = f"{TsNotebookMagics.mar_build.__doc__}\n{_MAR_BUILD_PARSER.format_help()}"
