"""Errors of the batch client: raised across its border, caught once by the CLI."""

from __future__ import annotations


class BatchError(Exception):
    """Base error of the batch client; the message is a sentence an operator can act on."""


class InputDirError(BatchError):
    """The input folder is missing, not a folder, or holds no ZIP/NIfTI file."""


class OutputFileError(BatchError):
    """The output file cannot be read back (for resume) or written."""
