"""Where ``%%handler`` cells live: each is checked, saved as ``<workspace>/handlers/NAME.py`` and
remembered by name, so ``%mar_build --handler NAME`` packages it and a dry run can load it.

Also prepares what a dry run's handler sees as its model dir: a folder you name, an archive
(extracted safely once into a cache keyed by its content hash), or just the handler itself.
"""

from __future__ import annotations

import json
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from ts_notebook.archive.checks import check_handler_source, check_model_name
from ts_notebook.archive.extract import extract_cached
from ts_notebook.archive.folder import model_config
from ts_notebook.archive.manifest import MANIFEST_PATH, Manifest
from ts_notebook.errors import ArchiveError, HandlerError
from ts_notebook.handler.payload import Request, make_request
from ts_notebook.jsontypes import JsonObject
from ts_notebook.preview import guess_text_type


@dataclass(frozen=True)
class SavedHandler:
    """A handler cell saved to disk. The value of ``%%handler NAME`` without ``--test``."""

    name: str
    path: Path

    def __repr__(self) -> str:
        return f"handler {self.name} saved to {self.path}; package it with %mar_build --handler {self.name}"


@dataclass(frozen=True)
class ModelDir:
    """What the handler will see: its model dir, the manifest and the model-config.yaml."""

    path: Path
    model_name: str
    manifest: JsonObject
    model_yaml_config: JsonObject


class Workspace:
    """A notebook's handler folder (default ``./.ts_notebook``) and its registry of names."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else Path.cwd() / ".ts_notebook"
        self.handlers: dict[str, Path] = {}

    @property
    def handler_dir(self) -> Path:
        return self.root / "handlers"

    def save(self, name: str, source: str) -> SavedHandler:
        """Check the cell (syntax, entry point) and save it as ``NAME.py``.

        Raises:
            HandlerError: a bad name, a syntax error (with the cell line) or no usable entry point.
        """
        try:
            check_model_name(name)
        except ArchiveError as exc:
            raise HandlerError(
                str(exc).replace("model name", "handler name").replace("--model-name", "%%handler")
            ) from exc
        if not name.isidentifier():
            raise HandlerError(
                f"handler name {name!r} must be a Python identifier (TorchServe imports it as a module): "
                f"try {name.replace('-', '_').replace('.', '_')}."
            )
        try:
            compile(source, f"<%%handler {name}>", "exec")
        except SyntaxError as exc:
            raise HandlerError(
                f"%%handler {name}: line {exc.lineno} of the cell: {exc.msg}\n  {(exc.text or '').rstrip()}"
            ) from exc
        self.handler_dir.mkdir(parents=True, exist_ok=True)
        path = self.handler_dir / f"{name}.py"
        partial = path.with_suffix(".py.partial")
        partial.write_text(source, encoding="utf-8")
        try:
            check_handler_source(partial, None)
        except ArchiveError as exc:
            partial.unlink()
            raise HandlerError(str(exc).replace(str(partial), f"%%handler {name}")) from exc
        partial.replace(path)
        self.handlers[name] = path
        return SavedHandler(name, path)

    def resolve(self, spec: str) -> str:
        """``NAME`` of a saved handler -> its file path (anything else is returned unchanged)."""
        name, sep, function = spec.partition(":")
        if name in self.handlers and not Path(name).exists():
            return str(self.handlers[name]) + (f":{function}" if sep else "")
        return spec

    def model_dir(self, name: str, *, model_dir: str | None = None, archive: str | None = None) -> ModelDir:
        """The model dir, manifest and yaml config a dry run of handler ``name`` gets.

        Raises:
            HandlerError: both or a missing folder/archive given.
        """
        if model_dir and archive:
            raise HandlerError("pass --model-dir or --archive, not both.")
        if archive:
            path = self._extracted(Path(archive))
        elif model_dir:
            path = Path(model_dir)
            if not path.is_dir():
                raise HandlerError(f"--model-dir {model_dir}: not a folder. Pass the folder holding the model's files.")
        else:
            path = self.handler_dir
        manifest = self._manifest(path, name)
        config = model_config(path, manifest)
        model_name = manifest.get("model", {}).get("modelName", name) if archive else name
        return ModelDir(path.resolve(), str(model_name), manifest, config)

    def _extracted(self, archive: Path) -> Path:
        if not archive.exists():
            raise HandlerError(f"--archive {archive}: no such archive.")
        return extract_cached(archive, self.root / "archives")

    def _manifest(self, path: Path, name: str) -> JsonObject:
        file = path / MANIFEST_PATH
        manifest: JsonObject
        if file.is_file():
            manifest = json.loads(file.read_text(encoding="utf-8"))
        else:
            manifest = Manifest.new(name, f"{name}.py", "1.0").to_dict()
        # The archive %mar_build --handler NAME makes names this file as its handler.
        manifest.setdefault("model", {})["handler"] = f"{name}.py"
        return manifest


def requests_for_test(
    payload: str | None, test_file: str | None, content_type: str | None, headers: dict[str, str], batch: int
) -> list[Request]:
    """The batch a ``--test`` / ``--test-file`` run sends: the same request ``batch`` times.

    Without ``--content-type``, a ``--test`` payload that parses as JSON is sent as
    ``application/json``, any other as ``text/plain``; a file gets the type its name suggests.
    """
    if test_file is not None:
        path = Path(test_file)
        if not path.is_file():
            raise HandlerError(f"--test-file {test_file}: no such file.")
        body: bytes | str = path.read_bytes()
        ct = content_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    else:
        body = payload or ""
        ct = content_type or guess_text_type(body)
    if batch < 1:
        raise HandlerError(f"--batch {batch}: a batch holds at least one request.")
    return [make_request(body, ct, headers) for _ in range(batch)]
