"""An error answered over HTTP as TorchServe answers it: ``{"code", "type", "message"}``.

Its own module so that the registry (which raises it) and the HTTP layers (which raise and render it)
both import it downward; neither has to import the other for it.
"""

from __future__ import annotations


class ApiError(Exception):
    """An error answered as TorchServe does: ``{"code", "type", "message"}``."""

    def __init__(self, code: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.kind = kind
        self.message = message


def not_found(name: str) -> ApiError:
    return ApiError(404, "ModelNotFoundException", f"Model not found: {name}")


def version_not_found(name: str, version: str) -> ApiError:
    return ApiError(404, "ModelVersionNotFoundException", f"Model version: {version} does not exist for model: {name}")
