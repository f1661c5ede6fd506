"""Series selector: DICOM index -> chosen series -> HU volume, every decision explained.

Headers are indexed without pixels; the rules judge each series (or geometric
sub-stack) with a reason; only the chosen series is decoded into an LPS HU
volume. NIfTI input and the lung-field check are offered for the same volume type.
"""

from __future__ import annotations

import logging

from series_selector.anatomy import check_chest_anatomy
from series_selector.nifti import load_nifti
from series_selector.reader import index_path
from series_selector.report_table import format_report_table
from series_selector.resample import resample_to, to_sitk
from series_selector.select import select_series
from series_selector.volume import load_volume

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "check_chest_anatomy",
    "format_report_table",
    "index_path",
    "load_nifti",
    "load_volume",
    "resample_to",
    "select_series",
    "to_sitk",
]
