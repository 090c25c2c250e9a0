"""IPython magics: parse the line, make one core call, return a value that renders itself.

Core errors (``TsNotebookError``) become ``UsageError`` here, so the user sees the message and no
traceback; anything unexpected keeps its traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.utils.process import arg_split

from ts_notebook.archive import ArchiveInfo, export_model, extract_archive, open_archive
from ts_notebook.archive.build import plan_archive, write_plan
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

    @magic_arguments()
    @argument("--model-name", required=True, help="Model name; the archive is MODEL_NAME.mar. Letters, digits, _ - .")
    @argument("-v", "--version", required=True, help="Model version, e.g. 1.0 (required, as in torch-model-archiver).")
    @argument("--serialized-file", help="Weights: a state_dict .pt/.pth, a TorchScript .pt, .onnx, ...")
    @argument("--model-file", help="Python file with exactly one torch.nn.Module class (eager models).")
    @argument(
        "--handler",
        required=True,
        help="Built-in handler name (image_classifier, ...), path/handler.py, path/module or path/module:function.",
    )
    @argument("--extra-files", help="Comma-separated files, folders (their contents) or globs, flattened to the root.")
    @argument("--runtime", default="python", choices=["python", "python3", "LSP"], help="Runtime (default python).")
    @argument("--export-path", help="Folder to write the archive to (default: the current folder).")
    @argument(
        "--archive-format",
        default="default",
        choices=["tgz", "no-archive", "zip-store", "default"],
        help="default: .mar zip; zip-store: .mar without compression; tgz: .tar.gz; no-archive: a folder.",
    )
    @argument("-f", "--force", action="store_true", help="Overwrite an existing archive of the same name.")
    @argument("-r", "--requirements-file", help="requirements.txt to ship inside the archive.")
    @argument("-c", "--config-file", help="model-config.yaml (workers, batching, timeouts, handler settings).")
    @argument("--model-path", help="MMS-style: pack this whole folder (minus hidden and build files).")
    @line_magic
    @_user_errors
    def mar_build(self, line: str) -> ArchiveInfo:
        """Build a TorchServe model archive; same flags and meaning as torch-model-archiver 0.12.

        Everything is checked before anything is written; a failed build leaves nothing behind.
        Returns the archive's description (path, format, manifest, files with sizes).

        Example::

            %mar_build --model-name tiny --version 1.0 --model-file model.py \\
                --serialized-file tiny.pth --handler handler.py --extra-files index_to_name.json
        """
        args = _parse(self.mar_build, line)
        plan = plan_archive(
            args.model_name,
            args.version,
            args.handler,
            serialized_file=args.serialized_file,
            model_file=args.model_file,
            extra_files=args.extra_files,
            runtime=args.runtime,
            export_path=args.export_path,
            archive_format=args.archive_format,
            force=args.force,
            requirements_file=args.requirements_file,
            config_file=args.config_file,
            model_path=args.model_path,
        )
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
