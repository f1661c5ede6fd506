"""Errors the inference package raises across its border."""

from __future__ import annotations


class InferenceError(Exception):
    """Base of every error raised by the inference package.

    ``code`` is a short machine-readable string that reaches the result JSON.
    """

    code = "inference_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class NotChestError(InferenceError):
    """The volume does not look like a chest CT (no lung fields)."""

    code = "not_chest_ct"


class ModelError(InferenceError):
    """A model failed on a volume it accepted."""

    code = "model_error"
