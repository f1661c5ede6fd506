"""Body mask: the patient without table, blankets, wires or air outside.

Soft tissue and bone are above -500 HU; the table, blankets and ECG wires are
thin or separated from the body by air, so a slice-wise opening followed by the
largest 3-D component keeps the patient. Holes are filled slice by slice, so the
lungs and airways lie inside the body mask.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage as ndi

from inference.analyzer.morphology import disk, fill_holes_2d, largest_component

logger = logging.getLogger(__name__)

BODY_THRESHOLD_HU = -500.0
"""Tissue vs air; halfway between air (-1000) and fat (-100)."""


def body_mask(hu: np.ndarray, spacing_zyx: tuple[float, float, float]) -> np.ndarray:
    """Boolean body mask (lungs included) on the working grid."""
    tissue = hu > BODY_THRESHOLD_HU
    # Opening of ~4 mm radius cuts wires, blanket folds and thin table parts.
    r = max(1, int(round(4.0 / spacing_zyx[1])))
    opened = ndi.binary_opening(tissue, structure=disk(r))
    body = largest_component(opened)
    if not body.any():
        return body
    body = fill_holes_2d(body)
    # Give back the skin the opening shaved off (within the original tissue).
    body |= ndi.binary_dilation(body, structure=disk(r)) & tissue
    return fill_holes_2d(body)
