"""Generations: the handler code and files a model version's workers run, named by their content.

A hot reload makes a new generation beside the old one: from a rebuilt archive (extracted by the
safe extractor into the content-keyed cache), or from the current generation with a new handler
file (``%%handler --serve``), made of hard links so that weights are never copied. Every function
here reads or writes files: the backend runs them off its event loop.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path

from ts_notebook.archive.folder import folder_manifest, model_config
from ts_notebook.archive.manifest import MANIFEST_PATH
from ts_notebook.backend.messages import Generation
from ts_notebook.jsontypes import JsonObject

_CHUNK = 1 << 20
# (device, inode, size, mtime) -> sha256: files shared by hard links across generations hash once.
_DIGESTS: dict[tuple[int, int, int, int], str] = {}


def file_digest(path: Path) -> str:
    st = path.stat()
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    digest = _DIGESTS.get(key)
    if digest is None:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
        digest = _DIGESTS[key] = h.hexdigest()
    return digest


def tree_digests(root: Path) -> dict[str, str]:
    """Every regular file under ``root`` (relative path -> sha256), links not followed."""
    out: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                out[path.relative_to(root).as_posix()] = file_digest(path)
    return out


def read_generation(model_dir: Path, gen_id: str | None = None) -> Generation:
    """The generation a model folder holds: its manifest, handler, model-config.yaml and content id.

    ``gen_id`` is given for a folder of the extraction cache: its name is already the hash of the
    archive's content, so the files are not read and hashed a second time.
    """
    manifest = folder_manifest(model_dir)
    model = manifest.setdefault("model", {})
    yaml_config = model_config(model_dir, manifest)
    if gen_id is None:
        digests = tree_digests(model_dir)
        gen_id = hashlib.sha256(json.dumps(sorted(digests.items())).encode()).hexdigest()[:10]
    return Generation(gen_id, str(model_dir), manifest, str(model.get("handler", "")), yaml_config)


def handler_file(generation: Generation) -> str | None:
    """The handler's file name inside the model dir (None for a TorchServe built-in handler)."""
    module = generation.handler.partition(":")[0].removesuffix(".py").split("/")[-1]
    return f"{module}.py" if (Path(generation.model_dir) / f"{module}.py").is_file() else None


def only_handler_changed(old: Generation, new: Generation) -> bool:
    """Whether ``new`` differs from ``old`` in the handler file alone (weights, model file, configs,
    label maps and the rest of the manifest the same), so a worker may keep what it loaded."""
    old_file, new_file = handler_file(old), handler_file(new)
    if old_file is None or new_file is None:
        return False
    skip_old, skip_new = {old_file, MANIFEST_PATH}, {new_file, MANIFEST_PATH}
    rest_old = {k: v for k, v in tree_digests(Path(old.model_dir)).items() if k not in skip_old}
    rest_new = {k: v for k, v in tree_digests(Path(new.model_dir)).items() if k not in skip_new}
    return rest_old == rest_new and _without_handler(old.manifest) == _without_handler(new.manifest)


def _without_handler(manifest: JsonObject) -> JsonObject:
    model = {k: v for k, v in manifest.get("model", {}).items() if k != "handler"}
    return {**{k: v for k, v in manifest.items() if k not in ("model", "createdOn")}, "model": model}


def with_handler(base: Generation, source: str, filename: str, root: Path) -> Generation:
    """A new generation: ``base``'s files (hard links, never copies of the weights) with ``source`` as
    the handler file ``filename``, and the manifest naming it.

    Raises:
        OSError: the folder could not be made (disk full, permissions).
    """
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = Path(_unique(root, ".staging"))
    try:
        generation = _stage(base, source, filename, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # a failed one leaves nothing behind
        raise
    final = root / generation.gen_id
    if final.exists():  # the same code again: that generation exists already
        shutil.rmtree(staging, ignore_errors=True)
        return read_generation(final)
    os.replace(staging, final)
    return dataclasses.replace(generation, model_dir=str(final))


def discard(generation: Generation, root: Path) -> None:
    """Remove a generation made under ``root`` that never served (its swap failed)."""
    folder = Path(generation.model_dir)
    if folder.parent == root:
        shutil.rmtree(folder, ignore_errors=True)


def _stage(base: Generation, source: str, filename: str, staging: Path) -> Generation:
    shutil.copytree(
        base.model_dir,
        staging,
        copy_function=_link_or_copy,
        ignore=shutil.ignore_patterns("__pycache__"),
        dirs_exist_ok=True,
    )
    old = handler_file(base)
    if old is not None and old != filename:
        (staging / old).unlink(missing_ok=True)
    target = staging / filename
    target.unlink(missing_ok=True)  # a hard link: writing through it would change the old generation
    target.write_text(source, encoding="utf-8")
    manifest = json.loads(json.dumps(base.manifest))
    manifest.setdefault("model", {})["handler"] = filename
    manifest_file = staging / MANIFEST_PATH
    manifest_file.parent.mkdir(parents=True, exist_ok=True)
    manifest_file.unlink(missing_ok=True)
    manifest_file.write_text(json.dumps(manifest, indent=2))
    return read_generation(staging)


def _unique(root: Path, suffix: str) -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="gen-", suffix=suffix, dir=root)


def _link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed there
        shutil.copy2(src, dst)
    return dst
