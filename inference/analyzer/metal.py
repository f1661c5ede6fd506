"""Medical material: metal and other very dense devices inside the body.

Metal saturates CT numbers (3071 HU on 12-bit scanners); cortical bone stays
below ~2000 HU. Counting voxels above 2500 HU at full resolution (small wires
average away on a coarse grid) is robust to streaks, which are bands of wrong
but lower numbers.

Undiluted iodinated contrast in the injected arm vein, the subclavian vein or
the SVC also saturates (both LIDC-IDRI cases in ``../shared/data`` reach 3071
and 5892 HU there). Contrast is never metal: on an enhanced study (phase from
``contrast.detect_contrast_phase``), a dense object lying in an opacified
lumen - a quarter or more of the tissue 1-3 voxels around it at 150-2500 HU,
the diluting contrast and enhanced blood around the jet - is iodine. Metal in
soft tissue or fat has soft tissue around it (a pacemaker generator in the
chest wall: none of its surround above 150 HU in the phantom). Measured on the
real contrast jets: 31-93 % of the surround opacified. The known cost: leads
lying in an opacified SVC or heart are not counted on an enhanced study (the
generator in the chest wall still is).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from inference.analyzer.evidence import component_evidence
from inference.analyzer.types import Anatomy, Measure, WorkGrid
from inference.types import Evidence

METAL_HU = 2500.0
"""Cortical bone stays below ~2000 HU at 120 kVp; metal saturates (3071 HU on 12-bit
scanners): the module docstring gives the physics."""
MIN_METAL_ML = 0.02
"""Floor against isolated streak or noise voxels above 2500 HU (singletons, ~0.0005 ml each);
the smallest device part of interest, a 2 mm lead over 10 mm, is ~0.03 ml (phantom physics)."""
OPACIFIED_HU = (150.0, 2500.0)
"""Opacified blood: arterial enhancement above 150 HU is diagnostic in CT angiography (Bae,
Radiology 2010); the upper bound is METAL_HU."""
MIN_OPACIFIED_SURROUND = 0.25
"""Geometry of a dense object in a lumen (the same solid-angle argument as
``nodules.CONTACT_LIMIT``): floating in the lumen, all of its surround is opacified
blood; lying against a flat vessel wall, half of it; wedged in a right-angled corner
(a confluence, the cavo-atrial junction), a quarter. Below a quarter the object lies
outside the lumen: a device in the chest wall or a lead in the myocardium. Checked,
not fitted, on the real contrast jets at hand (31-93 % on the two LIDC-IDRI contrast
studies) and the phantom pacemaker generator in the chest wall (0 %)."""


def metal_measures(grid: WorkGrid, anatomy: Anatomy, enhanced: bool = False
                   ) -> dict[str, Measure]:
    """Volume of metal-density voxels inside the body (counted at full resolution).

    ``enhanced``: the study has iodinated contrast; dense objects in an
    opacified lumen are then contrast, not metal.
    """
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
    note = ""
    if enhanced and per_work.any():
        iodine = _in_opacified_lumen(vox, grid)
        if iodine.any():
            dropped = float(per_work[iodine].sum()) * grid.source.voxel_volume_ml
            per_work[iodine] = 0
            note = (f"{dropped:.2f} ml above 2500 HU in opacified vessels taken as contrast, "
                    "not metal")
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
                                    "voxels above 2500 HU in or on the body", evidence,
                                    note=note)}


def _in_opacified_lumen(vox: np.ndarray, grid: WorkGrid) -> np.ndarray:
    """Work-grid mask of dense (> 2500 HU) objects surrounded by opacified blood."""
    fz, fy, fx = grid.factors
    nz, ny, nx = vox.shape
    out = np.zeros(grid.shape, dtype=bool)
    dense = vox > METAL_HU
    labels, n = ndi.label(dense, structure=np.ones((3, 3, 3)))
    for lab, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        box = tuple(slice(max(0, s.start - 3), min(e, s.stop + 3))
                    for s, e in zip(sl, (nz, ny, nx), strict=True))
        core = labels[box] == lab
        surround = ndi.binary_dilation(core, iterations=3) & ~ndi.binary_dilation(core)
        if not surround.any():
            continue
        sub = vox[box]
        lumen = (sub >= OPACIFIED_HU[0]) & (sub <= OPACIFIED_HU[1])
        if (lumen & surround).sum() >= MIN_OPACIFIED_SURROUND * surround.sum():
            zs, ys, xs = np.nonzero(core)
            out[(zs + box[0].start) // fz, (ys + box[1].start) // fy,
                (xs + box[2].start) // fx] = True
    return out
