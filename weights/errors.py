"""Errors of the weights package."""

from __future__ import annotations


class WeightsError(Exception):
    """Base error: a manifest or weights file is wrong, or an install failed."""


class ManifestError(WeightsError):
    """The manifest cannot be parsed or names an entry twice."""


class ChecksumError(WeightsError):
    """A weights file does not have the SHA-256 the manifest promises."""
