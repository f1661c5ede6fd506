"""Evaluation of the analyzer: labelled real cases and the gap-free phantom cohort.

Kept outside ``inference/`` because it needs the phantom generator and the
annotation readers, which the product pipeline never imports.
"""

from __future__ import annotations

import logging

logging.getLogger(__name__).addHandler(logging.NullHandler())
