"""The TorchServe handler contract: Context, a compatible BaseHandler, entry-point loading, the
``ts`` compatibility layer, request payloads, and an in-process dry run with a stage trace.

Imports neither IPython nor torch at module level.
"""

from ts_notebook.handler.base_handler import BaseHandler
from ts_notebook.handler.compat import ts_compat
from ts_notebook.handler.context import Context, RequestProcessor
from ts_notebook.handler.payload import Request, make_request
from ts_notebook.handler.trace import Failure, Stage, Trace, check_batch_result, dry_run
from ts_notebook.handler.util import PredictionException
from ts_notebook.handler.workspace import ModelDir, SavedHandler, Workspace, requests_for_test

__all__ = [
    "BaseHandler",
    "Context",
    "Failure",
    "ModelDir",
    "PredictionException",
    "Request",
    "RequestProcessor",
    "SavedHandler",
    "Stage",
    "Trace",
    "Workspace",
    "check_batch_result",
    "dry_run",
    "make_request",
    "requests_for_test",
    "ts_compat",
]
