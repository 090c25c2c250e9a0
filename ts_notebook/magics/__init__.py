"""IPython magics: parse the line, make one core call, return a value that renders itself.

Core errors (``TsNotebookError``) become ``UsageError`` here, so the user sees the message and no
traceback; anything unexpected keeps its traceback.
"""

from __future__ import annotations

import dataclasses
import functools
import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from ts_notebook.archive import ArchiveInfo, export_model, extract_archive, open_archive
from ts_notebook.archive.build import write_plan
from ts_notebook.archive.cli import archiver_parser, plan_from_args
from ts_notebook.archive.inspect import InspectReport
from ts_notebook.deploy.cli import export_parser
from ts_notebook.errors import TsNotebookError
from ts_notebook.handler.workspace import Workspace, requests_for_test
from ts_notebook.magics.serve import SERVE_PARSER, ServeCommands, UsageParser, full_help, parse_or_help
from ts_notebook.session import ServingSession

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


_MAR_BUILD_PARSER = archiver_parser(prog="%mar_build", parser_class=UsageParser)
_EXPORT_PARSER = export_parser(prog="%ts_export", parser_class=UsageParser)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"--header {text!r}: write it as NAME=VALUE, e.g. --header X-Mode=echo")
    return key, value


def _parse(magic: Any, line: str) -> Any:
    """Split like a POSIX shell, so quoted paths lose their quotes (IPython's default keeps them).

    None after printing the help for ``-h``/``--help`` (magic_arguments parsers have no help flag).
    """
    words = shlex.split(line)
    if "-h" in words or "--help" in words:
        print(magic.parser.format_help())
        return None
    return magic.parser.parse_args(words)


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
class TsNotebookMagics(ServeCommands, Magics):
    """The ts_notebook magics (``%%handler``, ``%mar_build``, ``%mar_inspect``, ``%mar_check``, ``%ts_serve``,
    ``%ts_export``)."""

    def __init__(self, shell: Any = None) -> None:
        super().__init__(shell)
        self._workspace: Workspace | None = None
        self.session = ServingSession()  # every backend this kernel started or uses

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
    @argument(
        "--serve",
        nargs="?",
        const="",
        metavar="MODEL",
        help="Serve this code as MODEL (default NAME) on the running backend, with zero failed requests.",
    )
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

        With ``--serve [MODEL]`` (after the dry run passes, when one is asked for) the running
        backend's model MODEL gets the new code: in place when only the handler changed and its
        ``initialize`` is the same, else new workers start beside the old ones and traffic moves when
        they are ready. If the new code fails to load, the old code keeps serving and the cell shows
        the error. An unregistered MODEL is registered from ``--archive`` / ``--model-dir``.

        Example::

            %%handler tiny --archive tiny.mar --test '{"input": [1, 2, 3, 4]}' --batch 2
            from ts.torch_handler.base_handler import BaseHandler
            class TinyHandler(BaseHandler):
                ...
        """
        args = _parse(self.handler, line)
        if args is None:
            return None
        saved = self.workspace.save(args.name, cell)
        if args.test is None and args.test_file is None:
            return saved if args.serve is None else self._serve_cell(args, saved.path, None)
        trace = self._dry_run(args, saved.path)
        if args.serve is None or not trace.ok:
            return trace  # a failing dry run is never served
        return self._serve_cell(args, saved.path, trace)

    def _serve_cell(self, args: Any, path: Path, trace: Any) -> Any:
        from ts_notebook.live import serve_cell

        tracked = self.session.current()
        if tracked is None:
            raise UsageError("--serve needs a running backend: run %ts_serve start first")
        model = args.serve or args.name
        live = serve_cell(
            tracked.info.client(),
            model,
            args.name,
            path.read_text(encoding="utf-8"),
            path,
            store=self.workspace.root / "served",
            archive=args.archive,
            model_dir=args.model_dir,
        )
        return live if trace is None else type(live)(live.model, live.report, live.registered, trace)

    def _dry_run(self, args: Any, handler_path: Path) -> Any:
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
            handler_dir=handler_path.parent,
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
        args = parse_or_help(_MAR_BUILD_PARSER, line)
        if args is None:
            return None
        if self._workspace is not None:
            args.handler = self._workspace.resolve(args.handler)
        plan = plan_from_args(args)
        with _progress(plan.total_bytes, f"building {plan.target.name}") as bar:
            info = write_plan(plan, bar)
        for note in self._served_from(info.path):
            print(note)
        return info

    @magic_arguments()
    @argument("path", help="A .mar, .tar.gz or no-archive folder.")
    @argument("--extract", metavar="DIR", help="Also extract it safely into DIR (new or empty).")
    @argument("--export-model", metavar="OUT", help="Also export the model to OUT (.pt), verified to load.")
    @argument("--force", action="store_true", help="Overwrite OUT if it exists.")
    @line_magic
    @_user_errors
    def mar_inspect(self, line: str) -> InspectReport | None:
        """Show an archive's manifest and files, check it loads, and optionally extract it or export its model.

        Reads zip .mar, .tar.gz and no-archive folders, with current, legacy (MMS) or no manifest.
        Extraction refuses absolute paths, '..', links and decompression bombs.

        Example::

            %mar_inspect model_store/tiny.mar --export-model tiny.pt
        """
        args = _parse(self.mar_inspect, line)
        if args is None:
            return None
        info = open_archive(args.path)
        extracted = extract_archive(args.path, args.extract) if args.extract else None
        exported = export_model(args.path, args.export_model, force=args.force) if args.export_model else None
        return InspectReport.of(info, extracted=extracted, exported=exported)

    @magic_arguments()
    @argument("target", help="A .mar, .tar.gz or model folder, or the name of a model the backend serves.")
    @argument("--ts-config", metavar="FILE", help="The config.properties it will be served with (checked too).")
    @argument("--timeout", type=float, metavar="S", help="Seconds initialize may take (default: startupTimeout).")
    @argument("--no-run", action="store_true", help="Only read the archive; do not run initialize.")
    @line_magic
    @_user_errors
    def mar_check(self, line: str) -> Any:
        """Why won't it load? Load the archive as a TorchServe worker would (in a subprocess, with the
        worker's folder and sys.path, initialize under the time limit) and list every cause found, each
        with its evidence and its fix; ``ok`` when clean.

        Example::

            %mar_check model_store/tiny.mar
        """
        from ts_notebook.doctor import diagnose

        args = _parse(self.mar_check, line)
        if args is None:
            return None
        path, store, registered = self._check_target(args.target)
        return diagnose(
            path, ts_config=args.ts_config, time_limit=args.timeout, store=store, registered=registered,
            run=not args.no_run,
        )  # fmt: skip

    def _check_target(self, target: str) -> tuple[Path, Path | None, set[tuple[str, str]]]:
        """The archive to check, the model store, and what is registered (for clashes)."""
        from ts_notebook.client import describe_all

        tracked = self.session.current()
        info = tracked.info if tracked is not None else None
        store = Path(info.model_store) if info is not None and info.model_store else None
        if Path(target).exists():
            versions = describe_all(info.client())[1] if info is not None else []
            return Path(target), store, {(v["modelName"], v["modelVersion"]) for v in versions}
        if info is None:
            raise UsageError(f"{target}: no such archive, and no backend is running to serve a model of that name")
        try:
            url = str(info.client().describe(target)[0]["modelUrl"])
        except Exception as exc:
            raise UsageError(f"{target}: no such archive, and the backend serves no model of that name") from exc
        path = Path(url.removeprefix("file://"))
        return (path if path.is_absolute() else (store or Path()) / path.name), store, set()

    @line_magic
    @_user_errors
    def ts_serve(self, line: str) -> Any:
        """Start, watch and drive a serving backend from the notebook (``%ts_serve COMMAND -h`` for one).

        ``start`` runs ts_notebook's embedded backend (pure Python, no Java) in a subprocess on
        127.0.0.1, or reuses the live one for the same store and settings; it stops with this
        kernel (or ``%unload_ext ts_notebook``) unless ``--detach``. A ``start`` with other settings
        while this notebook's backend runs starts nothing unless ``--replace``. ``predict`` returns
        the decoded answer; ``status`` says how to reach the server with curl.
        """
        args = parse_or_help(SERVE_PARSER, line)
        if args is None:
            return None
        return getattr(self, f"_serve_{args.command.replace('-', '_')}")(args)

    @line_magic
    @_user_errors
    def ts_export(self, line: str) -> Any:
        """Ship a model beyond the notebook: write a deployment for real TorchServe (a container with a
        model_snapshot), KServe (its TorchServe runtime, or its own Python model server) or Ray Serve,
        with the model's real settings, and list what was chosen and why, what will break, and how to run it.

        MODEL is a model the notebook's backend serves (its served settings are used), or an archive.

        Example::

            %ts_export tiny --to torchserve deploy/tiny-ts
        """
        from ts_notebook.deploy.cli import run

        args = parse_or_help(_EXPORT_PARSER, line)
        if args is None:
            return None
        return run(self._export_source(args.model, args.name), args)

    def _export_source(self, model: str, name: str | None) -> Any:
        """A served model's archive and settings, else an archive at that path or in the model store."""
        from ts_notebook.deploy import source
        from ts_notebook.errors import BackendError

        if Path(model).exists():
            return source.from_archive(model, name)
        tracked = self.session.current()
        if tracked is not None:
            info = tracked.info
            try:
                described = info.client().describe(model)
            except BackendError:
                described = []
            if described:
                found = source.from_description(described[0], source.archive_of(described[0], info.model_store))
                return found if name is None else dataclasses.replace(found, name=name)
        for candidate in (self.workspace.root / "model_store" / f"{model}.mar", Path(f"{model}.mar")):
            if candidate.exists():
                return source.from_archive(candidate, name)
        raise UsageError(
            f"{model}: no such archive, and no running backend of this notebook serves a model of that name. "
            "Pass the archive's path (from %mar_build), or %ts_serve register it first."
        )

    def _served_from(self, archive: Path) -> list[str]:
        """Notes for models the running backend serves from ``archive`` (they keep the old code until reloaded)."""
        tracked = self.session.current()
        if tracked is None:
            return []
        from ts_notebook.errors import BackendError

        try:
            listed = tracked.info.client().list_models()
        except BackendError:
            return []
        store = Path(tracked.info.model_store or ".")
        notes = []
        for entry in listed:
            url = Path(entry["modelUrl"])
            if (url if url.is_absolute() else store / url).resolve() == archive.resolve():
                name = entry["modelName"]
                notes.append(
                    f"note: the running backend serves {name} from {archive.name} and keeps its old code until "
                    f"you reload it: %ts_serve reload {name}"
                )
        return notes

    def shutdown(self) -> list[int]:
        """Stop the dashboards' pollers and the backends this kernel started (not detached ones)."""
        import sys

        dashboards = sys.modules.get("ts_notebook.widgets.dashboard")
        if dashboards is not None:  # never import ipywidgets just to find there is nothing to stop
            dashboards.stop_all()
        stopped: list[int] = self.session.shutdown()
        return stopped


TsNotebookMagics.mar_build.__doc__ = f"{TsNotebookMagics.mar_build.__doc__}\n{_MAR_BUILD_PARSER.format_help()}"
TsNotebookMagics.ts_serve.__doc__ = f"{TsNotebookMagics.ts_serve.__doc__}\n{full_help(SERVE_PARSER)}"
TsNotebookMagics.ts_export.__doc__ = f"{TsNotebookMagics.ts_export.__doc__}\n{_EXPORT_PARSER.format_help()}"
