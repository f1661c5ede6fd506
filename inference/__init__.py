"""Inference: the findings vocabulary, the models, the stacker and the pipeline.

Every door calls ``run_pipeline(source, settings) -> StudyResult``.
"""

from inference.findings import FINDING_KEYS, FINDINGS, Finding, get_finding
from inference.pipeline import run_pipeline
from inference.types import ProcessingStatus, StudyResult

__all__ = [
    "FINDINGS", "FINDING_KEYS", "Finding", "ProcessingStatus", "StudyResult", "get_finding",
    "run_pipeline",
]
