"""Medical material: metal and other very dense devices inside the body.

Metal saturates CT numbers (3071 HU on 12-bit scanners); cortical bone stays
below ~2000 HU and iodinated contrast in the SVC rarely above 2500 HU. Counting
voxels above 2500 HU at full resolution (small wires average away on a coarse
grid) is robust to streaks, which are bands of wrong but lower numbers.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from inference.analyzer.evidence import component_evidence
from inference.analyzer.types import Anatomy, Measure, WorkGrid
from inference.types import Evidence

METAL_HU = 2500.0
MIN_METAL_ML = 0.02


def metal_measures(grid: WorkGrid, anatomy: Anatomy) -> dict[str, Measure]:
    """Volume of metal-density voxels inside the body (counted at full resolution)."""
    fz, fy, fx = grid.factors
    vox = grid.source.voxels
    nz, ny, nx = vox.shape
    per_work = np.zeros(grid.shape, dtype=np.int32)
    body = anatomy.body
    for k in range(grid.shape[0]):
        slab = vox[k * fz:min(nz, (k + 1) * fz)] > METAL_HU
        if not slab.any():
            continue
        hits = slab.sum(axis=0)
        pad = np.zeros((grid.shape[1] * fy, grid.shape[2] * fx), dtype=np.int32)
        pad[:ny, :nx] = hits
        per_work[k] = pad.reshape(grid.shape[1], fy, grid.shape[2], fx).sum(axis=(1, 3))
    # Inside the body, or on its skin (ECG leads and ports are on the surface).
    near_body = ndi.binary_dilation(body, iterations=2)
    per_work[~near_body] = 0
    full_ml = grid.source.voxel_volume_ml
    total = float(per_work.sum()) * full_ml
    evidence: tuple[Evidence, ...] = ()
    if total >= MIN_METAL_ML:
        labels, n = ndi.label(per_work > 0, structure=np.ones((3, 3, 3)))
        counts = np.bincount(labels.ravel(), weights=per_work.ravel())
        counts[0] = 0
        big = int(np.argmax(counts))
        evidence = (component_evidence(grid, labels == big, "metal-density object (> 2500 HU)"),)
    return {"metal_volume": Measure("metal_volume", total, "ml",
                                    "voxels above 2500 HU in or on the body", evidence)}
