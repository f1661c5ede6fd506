"""Errors the SR writer raises across its border.

A door that catches :class:`OutputError` knows no DICOM object was written for
that result (nothing half-written is left behind by :func:`write_result_objects`).
"""

from __future__ import annotations


class OutputError(Exception):
    """Base error of ``sr_writer``: the result could not be turned into DICOM objects."""


class MissingSourceError(OutputError):
    """No source DICOM header to copy patient and study from (e.g. a NIfTI input).

    DICOM results must join the source study; without a source header there is
    no study to join, so no SR/SC is written (the JSON still can be).
    """


class SourceMismatchError(OutputError):
    """The source headers do not belong to the result's study."""
