"""One exception hierarchy for everything ts_notebook reports to a user.

Every message says what went wrong, the value that caused it, and what to do next. The notebook
layer turns these into ``UsageError`` so that no traceback hides the message.
"""

from __future__ import annotations


class TsNotebookError(Exception):
    """Base class of every error ts_notebook raises on purpose."""


class ArchiveError(TsNotebookError):
    """A model archive could not be built, read, extracted or exported."""


class UnsafeArchiveError(ArchiveError):
    """An archive tried to write outside its target or looks like a decompression bomb."""


class HandlerError(TsNotebookError):
    """A handler could not be resolved, loaded or run."""


class BackendError(TsNotebookError):
    """The serving backend could not be started, reached or driven."""
