"""Skeleton mask: large connected bone (ribs, spine, sternum, scapulae).

Calcified plaques are >= 130 HU too; what separates them from bone is size:
bone forms connected structures of many millilitres, plaques are specks.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from inference.analyzer.morphology import fill_holes_2d

BONE_HU = 200.0
MIN_BONE_ML = 5.0


def bone_mask(hu: np.ndarray, body: np.ndarray, voxel_ml: float) -> np.ndarray:
    """Large connected components above 200 HU, grown by one voxel (partial volume)."""
    dense = body & (hu > BONE_HU)
    # Osteoporotic vertebrae have marrow below 200 HU: their cortical shell alone
    # breaks into small pieces; filling each slice's rings keeps them whole.
    dense = fill_holes_2d(dense)
    labels, n = ndi.label(dense)
    if n == 0:
        return dense
    sizes = np.bincount(labels.ravel()) * voxel_ml
    keep = sizes >= MIN_BONE_ML
    keep[0] = False
    return ndi.binary_dilation(keep[labels], iterations=1)
