"""Vertebral bodies and their trabecular attenuation (opportunistic osteoporosis screening).

Pickhardt et al. (Ann Intern Med 2013;158:588): L1 trabecular attenuation
<= 110 HU is ~90 % specific for osteoporosis, <= 160 HU ~90 % sensitive;
lower thoracic vertebrae behave alike (Jang et al., Radiology 2019). The ROI is
the centre of the vertebral body (the thickest part of the vertebra), kept
away from the cortex, measured on the lowest vertebrae in the field.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage as ndi

from inference.analyzer.evidence import component_evidence
from inference.analyzer.types import Anatomy, Measure, WorkGrid

logger = logging.getLogger(__name__)

CORTEX_HU = 200.0
LOWEST_FRACTION = 0.3
"""Measure on the lowest 30 % of the lung-bearing slices (T9-L1 region)."""


def vertebral_bodies(grid: WorkGrid, anatomy: Anatomy) -> np.ndarray:
    """Per-slice filled bone of the spine: the bone component nearest the posterior midline."""
    bone = anatomy.body & (grid.hu > CORTEX_HU)
    spine = np.zeros_like(bone)
    for k in range(bone.shape[0]):
        if not anatomy.body[k].any():
            continue
        filled = ndi.binary_fill_holes(ndi.binary_closing(bone[k], iterations=1))
        labels, n = ndi.label(filled)
        if n == 0:
            continue
        ys, xs = np.nonzero(anatomy.body[k])
        cx = (xs.min() + xs.max()) / 2.0
        back = ys.max() if anatomy.anterior_sign < 0 else ys.min()
        depth = ys.max() - ys.min()
        best, best_cost = 0, np.inf
        for lab, sl in enumerate(ndi.find_objects(labels), start=1):
            area = (labels[sl] == lab).sum()
            if area < 20:
                continue
            yc = (sl[0].start + sl[0].stop) / 2.0
            xc = (sl[1].start + sl[1].stop) / 2.0
            # Spine: near the midline, in the posterior third, large.
            if abs(yc - back) > 0.45 * depth or abs(xc - cx) > 0.15 * (xs.max() - xs.min()):
                continue
            cost = abs(xc - cx) - 0.01 * area
            if cost < best_cost:
                best, best_cost = lab, cost
        if best:
            spine[k] = labels == best
    return spine


def vertebral_measures(grid: WorkGrid, anatomy: Anatomy, spine: np.ndarray
                       ) -> dict[str, Measure]:
    """Trabecular HU of the vertebral-body centres on the lowest lung slices."""
    lung_slices = np.nonzero(anatomy.lungs.any(axis=(1, 2)))[0]
    if lung_slices.size == 0 or not spine.any():
        return {"vertebral_trabecular_hu": Measure(
            "vertebral_trabecular_hu", None, "[hnsf'U]", "trabecular attenuation",
            note="no vertebral body found")}
    n_low = max(1, int(round(LOWEST_FRACTION * lung_slices.size)))
    low = lung_slices[:n_low] if anatomy.cranial_sign > 0 else lung_slices[-n_low:]
    dy, dx = grid.spacing_zyx[1], grid.spacing_zyx[2]
    values: list[float] = []
    roi_mask = np.zeros_like(spine)
    vox = grid.source.voxels
    fz, fy, fx = grid.factors
    for k in low:
        if not spine[k].any():
            continue
        dist = ndi.distance_transform_edt(spine[k], sampling=(dy, dx))
        r = float(dist.max())
        if r < 8.0:  # a vertebral body is >= 25 mm wide; thinner is a pedicle or rib
            continue
        cy, cx = np.unravel_index(int(np.argmax(dist)), dist.shape)
        yy, xx = np.ogrid[: spine.shape[1], : spine.shape[2]]
        roi = (((yy - cy) * dy) ** 2 + ((xx - cx) * dx) ** 2) <= (0.5 * r) ** 2
        roi_mask[k] = roi
        ys, xs = np.nonzero(roi)
        patch = vox[k * fz:(k + 1) * fz][:, (ys * fy).clip(0, vox.shape[1] - 1),
                                          (xs * fx).clip(0, vox.shape[2] - 1)]
        values.append(float(np.median(patch)))
    if len(values) < 2:
        return {"vertebral_trabecular_hu": Measure(
            "vertebral_trabecular_hu", None, "[hnsf'U]", "trabecular attenuation",
            note="fewer than two lower vertebral bodies in the field")}
    # Discs (70-100 HU) lower single slices; the upper half of the per-slice values
    # are vertebral bodies.
    value = float(np.percentile(values, 75))
    ev = (component_evidence(grid, roi_mask, "vertebral trabecular ROI"),)
    return {"vertebral_trabecular_hu": Measure(
        "vertebral_trabecular_hu", value, "[hnsf'U]",
        "trabecular attenuation of the lowest vertebral bodies (75th percentile of slices)",
        ev)}
