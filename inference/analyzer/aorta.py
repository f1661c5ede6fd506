"""Thoracic aorta (approximate): ascending and descending cross-sections and diameters.

On each slice the aorta is a round soft-tissue (or, enhanced, bright) disk; its
radius is the largest inscribed circle (2-D distance transform) of
non-fat, non-bone tissue where it is expected:
- descending: left and in front of the vertebral body, within 55 mm of its
  front; where none is found on the left, the right side is searched (a
  right-sided arch descends right of the spine);
- ascending: the anterior mediastinum right of the body's midline, on slices above
  the heart's widest slice and below the arch.
Thresholds: ascending >= 40 mm and descending >= 30 mm are dilated
(Hiratzka et al., ACCF/AHA thoracic aortic disease guideline 2010; Erbel et al.,
ESC aortic guideline 2014 normal values: ascending < 40, descending < 30 mm).
On enhanced studies the bright lumen is measured (``_lumen_disk``): the wall and
soft tissue touching it are left out, so the diameter is the luminal one, a little
(~2-4 mm) below the outer-wall diameter of the guideline limits: a conservative reading.
The maximal diameter is the 75th percentile of the per-slice diameters, so
the slices where the aorta merges with the heart or a branch do not decide.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage as ndi

from inference.analyzer.evidence import component_evidence
from inference.analyzer.kernel import standard_equivalent
from inference.analyzer.types import Anatomy, Measure, WorkGrid

logger = logging.getLogger(__name__)

SOFT_HU = (-30.0, 100.0)
MIN_RADIUS_MM = 7.0
"""Adult: a 14 mm disk is smaller than any adult aorta (descending >= ~18 mm, Erbel 2014).
Scaled down with the thorax for children (ADULT_THORAX_MM)."""
ADULT_THORAX_MM = 260.0
"""Typical adult inner thoracic width at the heart (the CTR denominator, ~250-280 mm); a
child's aorta scales with the thorax (aortic diameter grows with body size)."""
MAX_RADIUS_MM = 35.0
DISK_CANDIDATES = 8
MIN_DELINEATION = 0.5
PERCENTILE = 75.0
"""Of the per-slice diameters: high enough for the maximal diameter, robust to the
few slices where the aortic root or arch merges with the heart or a branch."""
DESC_NEAR_MM = 55.0
"""The descending aorta lies within 55 mm of the vertebral body's front (it runs on the
left-anterior side of the body, centre ~20-40 mm from its front in adults, radius <= ~15 mm)."""
ENHANCED_LUMEN_HU = 150.0
"""A lumen above this is enhanced (unenhanced blood 30-60 HU, arterial/venous phase
aorta 150-500 HU): its bright lumen is measured, without the wall."""
WALL_HU = 40.0
"""Aortic wall and the soft tissue around it, unenhanced muscle-like attenuation (30-50 HU)."""


def find_aorta(grid: WorkGrid, anatomy: Anatomy, med: np.ndarray, spine: np.ndarray,
               heart: np.ndarray, contrast: bool
               ) -> tuple[np.ndarray, list[float], list[float]]:
    """(mask, ascending diameters, descending diameters) on the working grid.

    Read at a standard kernel's resolution (``kernel.standard_equivalent``): a sharper
    kernel's noise and edge overshoot cut the soft-tissue disk and move the lumen's
    half-maximum edge (LIDC-IDRI 0001 ``sharp`` variant: descending 19.4-21.1 mm against
    18.9 on the original;
    Lung-PET-CT-Dx A0001: the disk beside its calcified plaque was lost, and the plaque
    with it). The wall calcium is scored on the same copy (``calcium``).
    """
    grid = standard_equivalent(grid)[0]
    dy, dx = grid.spacing_zyx[1], grid.spacing_zyx[2]
    hi = 600.0 if contrast else SOFT_HU[1]
    tissue = (grid.hu >= SOFT_HU[0]) & (grid.hu <= hi)
    mask = np.zeros(grid.shape, dtype=bool)
    asc: list[float] = []
    desc: list[float] = []
    lung_slices = np.nonzero(anatomy.lungs.any(axis=(1, 2)))[0]
    if lung_slices.size == 0:
        return mask, asc, desc
    heart_area = heart.sum(axis=(1, 2))
    heart_mid = int(np.argmax(heart_area)) if heart_area.any() else None
    yy, xx = np.ogrid[: grid.shape[1], : grid.shape[2]]
    lungs = anatomy.lungs
    thorax = max(float(np.ptp(np.nonzero(lungs[k].any(axis=0))[0])) * dx
                 for k in lung_slices) if lung_slices.size else ADULT_THORAX_MM
    r_min = MIN_RADIUS_MM * float(np.clip(thorax / ADULT_THORAX_MM, 0.5, 1.0))
    for k in lung_slices:
        if not spine[k].any() or not med[k].any():
            continue
        sy, sx = (float(v.mean()) for v in np.nonzero(spine[k]))
        sy_front = (np.nonzero(spine[k])[0].min() if anatomy.anterior_sign < 0
                    else np.nonzero(spine[k])[0].max())
        # Descending: left of and in front of (or beside) the vertebral body centre;
        # the right side only when the left holds none (right-sided arch).
        left = (xx - sx) * anatomy.left_sign > 0
        ahead = (yy - sy) * anatomy.anterior_sign > -5.0 / dy
        # Near the vertebral body's front, not the centroid of the whole vertebra: the
        # neural arch pulls that backwards, and with scoliosis (the spine rotated and
        # shifted beside the aorta) a circle round it cut the aortic disk (a 22 mm aorta
        # read as 15 mm on the scoliosis phantom).
        near = ((yy - sy_front) * dy) ** 2 + ((xx - sx) * dx) ** 2 <= DESC_NEAR_MM ** 2
        base = tissue[k] & med[k] & ~spine[k] & ~heart[k] & ahead & near
        r, c = _largest_disk(base & left, dy, dx, tissue[k] & ~spine[k], r_min=r_min)
        if r < r_min:
            r, c = _largest_disk(base & ~left, dy, dx, tissue[k] & ~spine[k], r_min=r_min)
        # The diameter is the lumen's; the mask keeps the whole disk (wall included),
        # where the wall calcium is looked for.
        lum = _lumen_disk(grid.hu[k], c, r, dy, dx)[0] if contrast and r >= r_min else r
        if r_min <= r <= MAX_RADIUS_MM and lum >= r_min:
            desc.append(2.0 * lum)
            mask[k] |= ((yy - c[0]) * dy) ** 2 + ((xx - c[1]) * dx) ** 2 <= r * r
        # Ascending: above the heart's widest slice, front half, right of the spine.
        above = heart_mid is not None and (k - heart_mid) * anatomy.cranial_sign > 0
        if above and heart[k].sum() < 0.5 * heart_area.max():
            # Right of the body's midline (the sternum's line), not of the spine, which
            # scoliosis moves sideways.
            bx = np.nonzero(anatomy.body[k].any(axis=0))[0]
            mid = (bx.min() + bx.max()) / 2.0 if bx.size else sx
            right = (xx - mid) * anatomy.left_sign < 10.0 / dx
            front = (yy - sy_front) * anatomy.anterior_sign > 15.0 / dy
            roi = tissue[k] & med[k] & front
            # The disk may cross the midline; its centre lies right of it (the
            # pulmonary trunk, of similar size, is on the left).
            r, c = _largest_disk(roi, dy, dx, tissue[k], centre_ok=right, r_min=r_min)
            lum = _lumen_disk(grid.hu[k], c, r, dy, dx)[0] if contrast and r >= r_min else r
            if r_min <= r <= MAX_RADIUS_MM and lum >= r_min:
                asc.append(2.0 * lum)
                mask[k] |= ((yy - c[0]) * dy) ** 2 + ((xx - c[1]) * dx) ** 2 <= r * r
    return mask, asc, desc


def _lumen_disk(hu: np.ndarray, c: tuple[int, int], r: float, dy: float, dx: float
                ) -> tuple[float, tuple[int, int]]:
    """On an enhanced study: the largest disk inside the bright lumen of the disk (r, c).

    The soft-tissue disk also takes in the wall and whatever touches it without a fat
    plane (oesophagus, azygos vein, pericardial recess), which reads a normal aorta as
    dilated. The enhanced lumen is bounded at half-way between its own attenuation (the
    median of the disk's inner half) and soft tissue (``WALL_HU``): the half-maximum edge
    of a blurred step. A disk whose core is not enhanced (``ENHANCED_LUMEN_HU``) is kept.
    """
    # Everything is read in the box of the disk grown by two pixels (``reach``), plus two
    # pixels more, over the 3x3 median's one-pixel reach: inside ``reach`` the median
    # filtered box holds the same values as the median filtered whole slice.
    reach = r + 2.0 * max(dy, dx)
    y0 = max(0, c[0] - int(np.ceil(reach / dy)) - 2)
    x0 = max(0, c[1] - int(np.ceil(reach / dx)) - 2)
    y1 = min(hu.shape[0], c[0] + int(np.ceil(reach / dy)) + 3)
    x1 = min(hu.shape[1], c[1] + int(np.ceil(reach / dx)) + 3)
    box = hu[y0:y1, x0:x1]
    yy, xx = np.ogrid[y0:y1, x0:x1]
    d2 = ((yy - c[0]) * dy) ** 2 + ((xx - c[1]) * dx) ** 2
    core = d2 <= (0.5 * r) ** 2
    lumen_hu = float(np.median(box[core]))
    if lumen_hu < ENHANCED_LUMEN_HU:
        return r, c
    # A 3x3 median and hole filling: single noise pixels below the edge level inside a
    # faintly enhanced (venous) lumen would otherwise cut the inscribed disk.
    smooth = ndi.median_filter(box, size=3)
    lumen = ndi.binary_fill_holes((smooth >= 0.5 * (lumen_hu + WALL_HU)) & (d2 <= reach ** 2))
    labels, _ = ndi.label(lumen)
    lab = labels[c[0] - y0, c[1] - x0]
    if lab == 0:
        return r, c
    dist = ndi.distance_transform_edt(labels == lab, sampling=(dy, dx))
    cy, cx = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return min(r, float(dist[cy, cx])), (int(cy) + y0, int(cx) + x0)


def _largest_disk(roi: np.ndarray, dy: float, dx: float, tissue: np.ndarray,
                  centre_ok: np.ndarray | None = None, r_min: float = MIN_RADIUS_MM
                  ) -> tuple[float, tuple[int, int]]:
    """Radius (mm) and centre of the largest delineated disk inside ``roi``.

    Delineated: at least half of a ring 2-4 mm outside the disk is fat, lung
    or air. Without contrast the aorta touching other soft tissue without a
    fat plane cannot be told apart from it, and a made-up diameter is worse
    than none.
    The distance transform runs in the ROI's bounding box plus one pixel: exact,
    as everything outside it is background.
    """
    if not roi.any():
        return 0.0, (0, 0)
    (y0, y1), (x0, x1) = ((int(a.min()), int(a.max())) for a in np.nonzero(roi))
    y0, x0 = max(0, y0 - 1), max(0, x0 - 1)
    y1, x1 = min(roi.shape[0], y1 + 2), min(roi.shape[1], x1 + 2)
    dist = ndi.distance_transform_edt(roi[y0:y1, x0:x1], sampling=(dy, dx))
    ok = (dist >= r_min) & (dist == ndi.maximum_filter(dist, size=3))
    if centre_ok is not None:
        ok &= np.broadcast_to(centre_ok, roi.shape)[y0:y1, x0:x1]
    peaks = np.argwhere(ok)
    if peaks.size == 0:
        return 0.0, (0, 0)
    order = np.argsort(-dist[tuple(peaks.T)])[:DISK_CANDIDATES]
    for py, px in peaks[order]:
        r = float(dist[py, px])
        cy, cx = int(py) + y0, int(px) + x0
        # The ring, read in the box of its outer radius only.
        ry, rx = int(np.ceil((r + 4.0) / dy)), int(np.ceil((r + 4.0) / dx))
        by0, bx0 = max(0, cy - ry), max(0, cx - rx)
        yy, xx = np.ogrid[by0: min(roi.shape[0], cy + ry + 1),
                          bx0: min(roi.shape[1], cx + rx + 1)]
        d = np.sqrt(((yy - cy) * dy) ** 2 + ((xx - cx) * dx) ** 2)
        ring = (d >= r + 2.0) & (d <= r + 4.0)
        box = ~tissue[by0: by0 + d.shape[0], bx0: bx0 + d.shape[1]]
        if ring.any() and float(box[ring].mean()) >= MIN_DELINEATION:
            return r, (cy, cx)
    return 0.0, (0, 0)


def aorta_measures(grid: WorkGrid, mask: np.ndarray, asc: list[float],
                   desc: list[float]) -> dict[str, Measure]:
    """Maximal ascending and descending diameters (75th percentile of slices)."""
    ev = (component_evidence(grid, mask, "aorta (approximate)"),) if mask.any() else ()
    out: dict[str, Measure] = {}
    for name, vals, what in (("ascending_aorta_diameter", asc, "ascending"),
                             ("descending_aorta_diameter", desc, "descending")):
        if len(vals) >= 3:
            out[name] = Measure(name, float(np.percentile(vals, PERCENTILE)), "mm",
                                f"maximal {what} aortic diameter (75th percentile of slices)", ev)
        else:
            out[name] = Measure(name, None, "mm", f"maximal {what} aortic diameter",
                                note=f"{what} aorta not delineated on 3 or more slices "
                                "(without contrast it needs a fat plane around it)")
    return out
