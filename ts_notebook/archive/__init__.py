"""The ``.mar`` model archive: build (all four formats), read, safely extract, export the model.

Imports neither IPython nor torch at module level; torch is imported only to export a model.
"""

from ts_notebook.archive.build import ArchiveSpec, BuildPlan, build_archive, plan_archive, write_plan
from ts_notebook.archive.checks import BUILTIN_HANDLERS, check_config_file, resolve_handler
from ts_notebook.archive.export import ExportResult, export_model
from ts_notebook.archive.extract import Limits, extract_archive
from ts_notebook.archive.manifest import MANIFEST_PATH, Manifest, parse_manifest
from ts_notebook.archive.read import FORMATS, ArchiveFile, ArchiveInfo, open_archive

__all__ = [
    "BUILTIN_HANDLERS",
    "FORMATS",
    "MANIFEST_PATH",
    "ArchiveFile",
    "ArchiveInfo",
    "ArchiveSpec",
    "BuildPlan",
    "ExportResult",
    "Limits",
    "Manifest",
    "build_archive",
    "check_config_file",
    "export_model",
    "extract_archive",
    "open_archive",
    "parse_manifest",
    "plan_archive",
    "resolve_handler",
    "write_plan",
]
