"""Mediastinum, heart, cardiothoracic ratio, contrast phase and pericardial fluid.

- Mediastinum: on each slice, what lies inside the convex hull of the two
  lungs but outside them (and outside the 30 mm-closed lungs).
- Heart: the largest soft-tissue body of the lower mediastinum in front of the
  spine. The axial cardiothoracic ratio (largest transverse heart diameter
  over the largest inner thoracic diameter) is read against 0.5, the
  radiographic cut-off (Danzer 1919); published axial-CT cut-offs lie between
  0.5 and 0.55, so the curve is wide (scale 0.025).
- Contrast: a blood pool of 150-600 HU (unenhanced blood is 30-55 HU), at
  least 20 ml and not inside bone cortex, means the study is enhanced;
  coronary calcium scoring is then not possible with a
  130 HU threshold.
- Pericardial fluid: water-density (-10..+25 HU) shell on the heart surface;
  reported as its thickness (normal pericardium is <= 2 mm, an effusion is
  called at >= 4 mm: Bogaert & Francone, Radiology 2013;267:340). Unenhanced
  myocardium (~40 HU) is only ~25 HU above fluid, so the band is set narrow.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import convex_hull_image

from inference.analyzer.evidence import component_evidence
from inference.analyzer.morphology import ball_mm, disk
from inference.analyzer.types import Anatomy, Measure, WorkGrid

logger = logging.getLogger(__name__)

SOFT_HU = (-30.0, 100.0)
NOISY_HU = 35.0
"""Noise SD above which density thresholds are biased (soft kernels at standard
dose are 10-25 HU in blood)."""
ENHANCED_HU = 150.0
MIN_ENHANCED_ML = 20.0
FLUID_HU = (-10.0, 25.0)
HEART_LEVELS = (0.1, 0.65)
"""Lung-height fractions (from the base) searched for the heart."""
HEART_SEED_LEVEL = 0.4
DOME_JUMP_MM = 8.0
"""A heart border that moves this much to the patient's right from one slice to
the next (going down) has met the liver dome."""


def mediastinum(anatomy: Anatomy, ext: np.ndarray) -> np.ndarray:
    """Per-slice region between the lungs (convex hull of both lungs minus the lungs)."""
    med = np.zeros_like(ext)
    both = anatomy.lung_left.any(axis=(1, 2)) & anatomy.lung_right.any(axis=(1, 2))
    for k in np.nonzero(both)[0]:
        hull = convex_hull_image(ext[k])
        med[k] = hull & ~ext[k] & anatomy.body[k]
    return med


def heart_mask(grid: WorkGrid, anatomy: Anatomy, med: np.ndarray,
               spine: np.ndarray) -> tuple[np.ndarray, bool]:
    """(heart, contrast): soft tissue of the lower mediastinum, tracked from mid-heart.

    The liver dome rises between the lung bases with the same attenuation as
    the heart and touches it through the diaphragm. So the heart is seeded at
    ~40 % of lung height (above the dome) and followed slice by slice; an 8 mm
    opening per slice cuts the diaphragm bridge, and a component joins only
    if it overlaps the heart of the previous slice.
    """
    empty = np.zeros_like(med)
    lung_slices = np.nonzero(anatomy.lungs.any(axis=(1, 2)))[0]
    if lung_slices.size < 4:
        return empty, False
    ordered = lung_slices if anatomy.cranial_sign > 0 else lung_slices[::-1]
    n = ordered.size
    levels = ordered[int(HEART_LEVELS[0] * n):int(HEART_LEVELS[1] * n) + 1]
    region = np.zeros_like(med)
    region[levels] = med[levels]
    # In front of the spine: drop rows behind the anterior edge of the vertebral body.
    for k in levels:
        if spine[k].any():
            ys = np.nonzero(spine[k].any(axis=1))[0]
            if anatomy.anterior_sign < 0:
                region[k, ys.min():, :] = False
            else:
                region[k, : ys.max() + 1, :] = False
    contrast = _enhanced(grid, region)
    hi = 600.0 if contrast else SOFT_HU[1]
    soft = region & (grid.hu >= SOFT_HU[0]) & (grid.hu <= hi)
    r = max(1, int(round(8.0 / grid.spacing_zyx[1])))
    seed_k = int(ordered[int(HEART_SEED_LEVEL * n)])
    heart = empty.copy()
    heart[seed_k] = _largest_2d(ndi.binary_opening(soft[seed_k], structure=disk(r)[0]))
    if not heart[seed_k].any():
        return empty, contrast
    pos = int(np.nonzero(ordered == seed_k)[0][0])
    allowed = set(levels.tolist())
    for step in (-1, 1):
        prev = heart[seed_k]
        smallest = largest = float(prev.sum())
        shrinking = False
        i = pos + step
        while 0 <= i < n and int(ordered[i]) in allowed:
            k = int(ordered[i])
            opened = ndi.binary_opening(soft[k], structure=disk(r)[0])
            labels, m = ndi.label(opened)
            if m == 0:
                break
            area = np.bincount(labels.ravel())
            over = np.bincount(labels.ravel(), weights=prev.ravel(), minlength=m + 1)
            over[0] = 0
            best = int(np.argmax(over))
            # The heart continues into the component it overlaps most, if that
            # component is mostly under the heart of the previous slice.
            if over[best] < 0.3 * area[best]:
                break
            cur = labels == best
            area_k = float(cur.sum())
            # Towards the apex the heart shrinks; growing again means the liver
            # dome (or the stomach) has joined: stop there. So does a sudden
            # widening towards the patient's right, where the dome rises.
            if step < 0 and shrinking and area_k > 1.15 * smallest:
                break
            if step < 0 and _right_edge(cur, anatomy.left_sign) - _right_edge(
                    prev, anatomy.left_sign) > DOME_JUMP_MM / grid.spacing_zyx[2]:
                break
            if area_k < 0.9 * largest:
                shrinking = True
            smallest, largest = min(smallest, area_k), max(largest, area_k)
            heart[k] = cur
            prev = cur
            i += step
    return heart, contrast


def _enhanced(grid: WorkGrid, region: np.ndarray) -> bool:
    """Does the lower mediastinum hold >= 20 ml of 150-600 HU that is not bone?

    Unenhanced blood and myocardium are 30-55 HU; enhanced blood 150-400.
    Bone marrow reaches that range too, but lies inside cortex (> 700 HU).
    """
    hu = grid.hu
    bright = region & (hu >= ENHANCED_HU) & (hu < 600)
    if not bright.any():
        return False
    cortex = ndi.binary_dilation(hu > 700, iterations=2)
    labels, n = ndi.label(bright & ~cortex)
    if n == 0:
        return False
    sizes = np.bincount(labels.ravel())[1:] * grid.voxel_ml
    return bool(sizes.max() >= MIN_ENHANCED_ML)


def _right_edge(mask2d: np.ndarray, left_sign: int) -> float:
    """How far the mask reaches towards the patient's right, in columns."""
    cols = np.nonzero(mask2d.any(axis=0))[0]
    if cols.size == 0:
        return 0.0
    return float(-cols.min()) if left_sign > 0 else float(cols.max())


def _largest_2d(mask: np.ndarray) -> np.ndarray:
    labels, n = ndi.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def heart_measures(grid: WorkGrid, anatomy: Anatomy, ext: np.ndarray, heart: np.ndarray,
                   contrast: bool) -> dict[str, Measure]:
    """Cardiothoracic ratio, heart volume, contrast phase, pericardial fluid thickness."""
    dx = grid.spacing_zyx[2]
    out: dict[str, Measure] = {
        "contrast_enhanced": Measure("contrast_enhanced", 1.0 if contrast else 0.0, "1",
                                     "enhanced blood pool of 150-600 HU (1) or not (0)")}
    out["image_noise"] = image_noise(grid, heart)
    if not heart.any():
        out["cardiothoracic_ratio"] = Measure("cardiothoracic_ratio", None, "1",
                                              "axial cardiothoracic ratio",
                                              note="heart not found in the field of view")
        return out
    # Width of the cardiac body on each slice: a 10 mm opening drops the venae
    # cavae, appendages and great-vessel stumps that join the heart by a neck.
    r = max(1, int(round(10.0 / grid.spacing_zyx[1])))
    heart_w = max(_x_extent(_largest_2d(ndi.binary_opening(heart[k], structure=disk(r)[0])))
                  for k in np.nonzero(heart.any(axis=(1, 2)))[0]) * dx
    thorax_w = max(_x_extent(ext[k]) for k in range(ext.shape[0])) * dx
    ctr = heart_w / thorax_w if thorax_w > 0 else None
    out["heart_width"] = Measure("heart_width", heart_w, "mm", "largest transverse heart diameter")
    out["thoracic_width"] = Measure("thoracic_width", thorax_w, "mm",
                                    "largest inner thoracic diameter")
    out["cardiothoracic_ratio"] = Measure(
        "cardiothoracic_ratio", ctr, "1", "axial cardiothoracic ratio",
        (component_evidence(grid, heart, "heart (mediastinal soft tissue)", with_mask=True),))
    out["heart_volume"] = Measure("heart_volume", float(heart.sum()) * grid.voxel_ml, "ml",
                                  "heart and pericardium volume")
    out.update(_pericardial_fluid(grid, heart, contrast))
    return out


def image_noise(grid: WorkGrid, heart: np.ndarray) -> Measure:
    """Noise: SD of full-resolution HU in the heart's interior (blood, a uniform region).

    Sharp (lung) kernels and low dose raise it from ~10-20 HU to 50-100 HU; then
    more parenchyma falls below -950 HU and more blood above 130 HU, so LAA%-950
    and the calcium score read high (Boedeker et al. 2004). The note says so.
    """
    core = ndi.binary_erosion(heart, structure=disk(2), iterations=1)
    if core.sum() < 50:
        return Measure("image_noise", None, "[hnsf'U]", "image noise (SD in the heart)")
    fz, fy, fx = grid.factors
    idx = np.argwhere(core)
    idx = idx[np.linspace(0, len(idx) - 1, min(len(idx), 5000)).astype(int)]
    vox = grid.source.voxels
    vals = vox[np.minimum(idx[:, 0] * fz, vox.shape[0] - 1),
               np.minimum(idx[:, 1] * fy, vox.shape[1] - 1),
               np.minimum(idx[:, 2] * fx, vox.shape[2] - 1)].astype(np.float32)
    # Robust SD (median absolute deviation): papillary muscles and trabeculae are outliers.
    sd = float(1.4826 * np.median(np.abs(vals - np.median(vals))))
    note = ""
    if sd > NOISY_HU:
        note = (f"noisy series (SD {sd:.0f} HU, sharp kernel or low dose): LAA%-950 and the "
                "calcium score read high; a soft-kernel series is preferable")
    return Measure("image_noise", sd, "[hnsf'U]", "image noise (robust SD in the heart)",
                   note=note)


def _x_extent(mask2d: np.ndarray) -> int:
    cols = np.nonzero(mask2d.any(axis=0))[0]
    return int(cols[-1] - cols[0] + 1) if cols.size else 0


def _pericardial_fluid(grid: WorkGrid, heart: np.ndarray, contrast: bool) -> dict[str, Measure]:
    """Thickness of the water-density shell on the heart surface (95th percentile, mm)."""
    spacing = grid.spacing_zyx
    fluid = heart & (grid.hu >= FLUID_HU[0]) & (grid.hu <= FLUID_HU[1])
    fluid = ndi.binary_opening(fluid, structure=ball_mm(2.0, spacing))
    # A shell: fluid that touches the heart's outer surface.
    surface = heart & ~ndi.binary_erosion(heart, structure=disk(1))
    labels, n = ndi.label(fluid)
    if n:
        touch = np.unique(labels[surface & fluid])
        keep = np.zeros(n + 1, dtype=bool)
        keep[touch[touch > 0]] = True
        fluid = keep[labels]
    if not contrast:
        return {"pericardial_fluid_thickness": Measure(
            "pericardial_fluid_thickness", None, "mm",
            "thickness of water-density fluid around the heart",
            note="unenhanced study: fluid (0-20 HU) and blood (30-55 HU) differ by less "
            "than two noise standard deviations")}
    if not fluid.any():
        return {"pericardial_fluid_thickness": Measure(
            "pericardial_fluid_thickness", 0.0, "mm",
            "thickness of water-density fluid around the heart")}
    thick = 2.0 * ndi.distance_transform_edt(fluid, sampling=spacing)
    value = float(np.percentile(thick[fluid], 95))
    return {"pericardial_fluid_thickness": Measure(
        "pericardial_fluid_thickness", value, "mm",
        "thickness of water-density fluid around the heart (95th percentile)",
        (component_evidence(grid, fluid, "pericardial fluid"),))}
