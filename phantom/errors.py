"""Errors the phantom package raises across its border."""

from __future__ import annotations


class PhantomError(Exception):
    """Base error of the synthetic chest phantom."""


class PhantomSpecError(PhantomError, ValueError):
    """A phantom specification or lesion cannot be built (e.g. a lesion that fits nowhere)."""


class PhantomWriteError(PhantomError):
    """The phantom could not be written as DICOM (unknown or unavailable transfer syntax)."""
