"""Errors of the evaluation package."""

from __future__ import annotations


class EvaluationError(Exception):
    """Base error of ``evaluation``."""


class AnnotationError(EvaluationError):
    """An annotation file is malformed or refers to slices the series does not have."""
