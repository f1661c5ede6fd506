"""Errors the series selector raises across its border.

Each carries a short machine ``code`` that reaches the result JSON next to the
human sentence, so clients can branch on it without parsing English.
"""

from __future__ import annotations


class SelectionError(Exception):
    """Base of every error raised by ``series_selector``."""

    code = "selection_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class UnsafeArchiveError(SelectionError):
    """An uploaded archive is malformed, too large, a ZIP bomb or escapes its folder."""

    code = "unsafe_archive"


class NoDicomError(SelectionError):
    """The input holds no readable DICOM instance."""

    code = "no_dicom"


class MultipleStudiesError(SelectionError):
    """The input holds more than one study; the caller must send one at a time."""

    code = "multiple_studies"


class NoUsableSeriesError(SelectionError):
    """No series passed the selection rules. The report says why for each."""

    code = "no_usable_series"


class VolumeError(SelectionError):
    """The chosen series (or NIfTI file) could not be turned into an HU volume."""

    code = "volume_error"
