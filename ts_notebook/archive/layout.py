"""Which file lands where in an archive: torch-model-archiver's flattening of ``--extra-files``,
and MMS's ``--model-path`` folder packaging with its exclusion rules.

A layout maps archive names (``/``-separated, relative) to source files on disk. Later entries
replace earlier ones with the same name, as the reference archiver's copies overwrite silently.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from ts_notebook.errors import ArchiveError

Layout = dict[str, Path]

# Directories the reference archiver never packs, at any depth.
SKIPPED_DIRS = frozenset({"__MACOSX", "__pycache__"})
# MMS --model-path also leaves out these files.
MMS_SKIPPED_FILES = frozenset({"MANIFEST.json", ".DS_Store"})
MMS_SKIPPED_SUFFIXES = (".pyc", ".mar")


def _wanted_dir(name: str) -> bool:
    return name not in SKIPPED_DIRS and not name.startswith(".")


def _walk(root: Path, prefix: str, layout: Layout, *, mms: bool = False) -> None:
    """Add every file under ``root`` as ``prefix/relative/path``, skipping what the reference skips."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if _wanted_dir(d))
        rel = Path(dirpath).relative_to(root).as_posix()
        for name in sorted(filenames):
            if mms and (name in MMS_SKIPPED_FILES or name.startswith(".") or name.endswith(MMS_SKIPPED_SUFFIXES)):
                continue
            arc = name if rel == "." else f"{rel}/{name}"
            layout[f"{prefix}{arc}"] = Path(dirpath, name)


def _is_wildcard(item: str) -> bool:
    return "*" in item or "?" in item or ("[" in item and "]" in item)


def add_extra_files(spec: str | list[str], layout: Layout, warnings: list[str]) -> None:
    """Add ``--extra-files`` the way torch-model-archiver 0.12 does.

    A file lands at the archive root under its basename (even ``dir/sub/b.txt``); a directory gives
    its *contents* to the root (its sub-directories keep their structure); wildcards are globbed.
    ``__pycache__``, ``__MACOSX`` and dot-directories are never packed.

    Raises:
        ArchiveError: a named (non-wildcard) path does not exist.
    """
    items = spec if isinstance(spec, list) else spec.split(",")
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        wildcard = _is_wildcard(item)
        if not wildcard and not Path(item).exists():
            raise ArchiveError(
                f"--extra-files: {item!r} does not exist (looked from {Path.cwd()}). Fix the path, "
                "or separate several files with commas and no spaces inside names."
            )
        matches = sorted(glob.glob(item))
        if wildcard and not matches:
            warnings.append(f"--extra-files pattern {item!r} matched no file; nothing added for it.")
        for match in matches:
            path = Path(match)
            if path.is_file():
                layout[path.name] = path
            elif path.is_dir():
                _add_dir_contents(path, layout)


def _add_dir_contents(folder: Path, layout: Layout) -> None:
    for child in sorted(folder.iterdir()):
        if child.is_file():
            layout[child.name] = child
        elif child.is_dir() and _wanted_dir(child.name):
            _walk(child, f"{child.name}/", layout)


def add_model_path(folder: Path, layout: Layout) -> None:
    """Add an MMS ``--model-path`` folder: everything in it, structure kept, minus hidden files and
    folders, ``__MACOSX``, ``__pycache__``, ``.DS_Store``, ``MANIFEST.json``, ``*.pyc`` and ``*.mar``."""
    if not folder.is_dir():
        raise ArchiveError(f"--model-path {folder}: not a folder. Pass the folder that holds the model's files.")
    _walk(folder, "", layout, mms=True)


def add_file(flag: str, value: str | None, layout: Layout, search_dirs: tuple[Path, ...] = ()) -> Path | None:
    """Add one named input file (``--serialized-file``, ``--model-file``, ...) at the archive root.

    Raises:
        ArchiveError: the file does not exist (or is a folder).
    """
    if not value:
        return None
    path = Path(value)
    if not path.is_file() and not path.is_absolute():
        path = next((d / value for d in search_dirs if (d / value).is_file()), path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise ArchiveError(f"{flag} {value!r} {what} (looked from {Path.cwd()}). Fix the path and build again.")
    layout[path.name] = path
    return path
