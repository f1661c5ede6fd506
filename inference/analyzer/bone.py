"""Skeleton mask: large connected bone (ribs, spine, sternum, scapulae).

Calcified plaques are >= 130 HU too; what separates them from bone is size:
bone forms connected structures of many millilitres, plaques are specks.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from inference.analyzer.morphology import fill_holes_2d, grow

BONE_HU = 200.0
"""Bone vs soft tissue: unenhanced soft tissue is < 100 HU, trabecular bone 100-300 HU and
cortex > 1000 HU at 120 kVp; 200 HU keeps the cortical shell that outlines each bone with
5 noise SDs (20 HU) above muscle."""
MIN_BONE_ML = 5.0
"""Components below this are not skeleton: a rib segment spanning a few slices is > 5 ml,
while a calcified plaque is 0.01-1 ml (phantom physics: a 3 mm plaque is 0.014 ml), so
plaques stay countable as calcium."""


def large_labels(mask: np.ndarray, voxel_ml: float, min_ml: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The 3-D component labels of ``mask`` and, per label, whether that component holds
    at least ``min_ml`` millilitres (``keep[labels]`` is the mask of the large ones)."""
    labels, _ = ndi.label(mask)
    keep = np.bincount(labels.ravel()) * voxel_ml >= min_ml
    keep[0] = False
    return labels, keep


def large_components(mask: np.ndarray, voxel_ml: float, min_ml: float) -> np.ndarray:
    """The 3-D connected components of ``mask`` of at least ``min_ml`` millilitres."""
    labels, keep = large_labels(mask, voxel_ml, min_ml)
    return keep[labels]


def bone_mask(hu: np.ndarray, body: np.ndarray, voxel_ml: float) -> np.ndarray:
    """Large connected components above 200 HU, grown by one voxel (partial volume)."""
    dense = body & (hu > BONE_HU)
    # Osteoporotic vertebrae have marrow below 200 HU: their cortical shell alone
    # breaks into small pieces; filling each slice's rings keeps them whole.
    dense = fill_holes_2d(dense)
    return grow(large_components(dense, voxel_ml, MIN_BONE_ML))
