"""Anatomy stage: body, airway, left and right lung on the working grid."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ctnode.settings import AnalyzerSettings
from inference.analyzer.airway import find_airway
from inference.analyzer.body import body_mask
from inference.analyzer.fov import image_edge
from inference.analyzer.grid import axis_signs
from inference.analyzer.lungs import aerated_lung, lung_region, split_left_right
from inference.analyzer.types import Anatomy, WorkGrid
from inference.errors import NotChestError

logger = logging.getLogger(__name__)


def segment_anatomy(grid: WorkGrid, settings: AnalyzerSettings) -> Anatomy:
    """Body, airway and lungs. Raises NotChestError when there is too little lung."""
    cranial, left, anterior = axis_signs(grid.source)
    spacing = grid.spacing_zyx
    edge = image_edge(grid)
    body = body_mask(grid.hu, spacing, edge)
    if not body.any():
        raise NotChestError("no body found in the volume: it does not look like a CT of a patient")
    airway = find_airway(grid.hu, body, spacing, cranial)
    aerated, free_gas, notes = aerated_lung(grid.hu, body, airway, settings.lung_threshold_hu,
                                            grid.voxel_ml)
    aerated_ml = float(aerated.sum()) * grid.voxel_ml
    if aerated_ml < settings.min_lung_volume_ml:
        raise NotChestError(
            f"only {aerated_ml:.0f} ml of aerated lung found (at least "
            f"{settings.min_lung_volume_ml:.0f} ml expected): the volume does not look like a "
            "chest CT"
        )
    left_air, right_air, how = split_left_right(aerated, body, left)
    if settings.threads > 1:  # the two lungs' closings are independent (scipy frees the GIL)
        with ThreadPoolExecutor(max_workers=2) as pool:
            right_region = pool.submit(lung_region, right_air, spacing)
            lung_left = lung_region(left_air, spacing)
            lung_right = right_region.result() & ~lung_left
    else:
        lung_left = lung_region(left_air, spacing)
        lung_right = lung_region(right_air, spacing) & ~lung_left
    logger.info("lungs: %.0f ml aerated, %s, airway %s", aerated_ml, how,
                "found" if airway.any() else "not in field")
    return Anatomy(
        body=body, lung_left=lung_left, lung_right=lung_right, airway=airway,
        free_gas=free_gas,
        cranial_sign=cranial, left_sign=left, anterior_sign=anterior,
        notes=(*notes, f"lungs {how}"), edge=edge,
    )


def slice_areas(mask: np.ndarray) -> np.ndarray:
    """Voxel count per slice (helper for coverage checks)."""
    return mask.sum(axis=(1, 2))
