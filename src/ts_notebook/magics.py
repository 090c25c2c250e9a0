"""IPython magics: parse the line, make one core call, return a value that renders itself.

Core errors (``TsNotebookError``) become ``UsageError`` here, so the user sees the message and no
traceback; anything unexpected keeps its traceback.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.utils.process import arg_split

from ts_notebook.archive import ArchiveInfo, export_model, extract_archive, open_archive
from ts_notebook.archive.build import write_plan
from ts_notebook.archive.cli import archiver_parser, plan_from_args
from ts_notebook.archive.inspect import InspectReport
from ts_notebook.errors import TsNotebookError

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
        return _MAR_BUILD_PARSER.parse_args(arg_split(line, posix=True))
    except SystemExit:  # -h printed the help; nothing to build
        return None


def _parse(magic: Any, line: str) -> Any:
    """Split like a POSIX shell, so quoted paths lose their quotes (IPython's default keeps them)."""
    return magic.parser.parse_args(arg_split(line, posix=True))


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
    """The ts_notebook magics (``%mar_build``, ``%mar_inspect``)."""

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


TsNotebookMagics.mar_build.__doc__ = f"{TsNotebookMagics.mar_build.__doc__}\n{_MAR_BUILD_PARSER.format_help()}"
