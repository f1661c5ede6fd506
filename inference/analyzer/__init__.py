"""Quantitative chest CT analyzer: classic image processing, no learned weights.

``analyze(volume, settings)`` segments the anatomy on a ~2 mm working copy,
measures what chest radiology measures (lung volumes, LAA%-950, opacity
fractions, ...) with evidence, and ``map_findings`` turns the measures into
per-finding probabilities through documented literature thresholds.
"""

from inference.analyzer.analyze import analyze
from inference.analyzer.mapping import assessed_keys, logistic, map_findings
from inference.analyzer.types import Analysis, Anatomy, Measure, WorkGrid

__all__ = ["Analysis", "Anatomy", "Measure", "WorkGrid", "analyze", "assessed_keys",
           "logistic", "map_findings"]
