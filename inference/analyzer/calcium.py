"""Coronary artery calcium (Agatston-style) and aortic wall calcification.

Agatston et al. (JACC 1990;15:827): on each slice, lesions >= 130 HU of at
least 1 mm^2, area times a density weight (1: 130-199, 2: 200-299,
3: 300-399, 4: >= 400 HU), summed; defined on 3 mm slices, so the sum is
scaled by slice spacing / 3 mm. Any score above 0 is coronary calcification.

- Coronary territory only: the heart's surface shell (6 mm outside to 5 mm inside
  the heart outline: the coronaries run in the epicardial fat of the grooves), away
  from the aortic root by 8 mm and from bone; the valves and the mitral annulus lie
  deeper in the heart and are not scored.
- Kernel: the score is defined at a standard kernel's resolution; an image sharper than
  that (measured on its own edges, ``kernel.standard_equivalent``) is smoothed in plane
  back to it before coronary calcium is scored, as a sharp kernel lifts small foci over
  the threshold (LIDC-IDRI 0003 sharp variant: 372-428 HU foci read 535-638 HU).
- kVp: the 130 HU threshold and the weight steps hold at 120 kVp; calcium reads higher at
  lower kVp, so they are multiplied by ``calcium_kvp_factor`` (the inverse of the
  down-scaling factors 0.88 at 100 kVp to 0.63 at 70 kVp of Zhou, Zhang et al. 2021,
  "Coronary artery calcium scoring at lower tube voltages - dose determination and
  scoring mechanism", phantom study; scaling images or thresholds by the same factor
  is equivalent). Unknown kVp: 120 is assumed and the note says so.
- Contrast-enhanced studies: iodinated blood is far above 130 HU, so the threshold
  becomes patient-specific, above the measured blood pool: lumen median + 3 robust SD
  (and never below the kVp-corrected 130 HU). Lumen-attenuation-relative thresholds are
  the published way to find calcium on CT angiography (e.g. van der Bijl et al., AJR
  2010;195:1299: calcium detected on CTA with 86-92 % sensitivity and 98-100 %
  specificity, Agatston scores underestimated); 3 SD leaves < 0.2 % of blood voxels
  above it for Gaussian noise. The score is then a lower bound and the note says so.
  Improved here in two ways, both kept within that published rule: the blood pool is
  the aortic lumen (``arterial_pool``), as the coronary lumen carries aortic blood while
  the right heart may hold undiluted contrast; and a coronary lesion must have
  epicardial fat in its 1-4 mm ring (``MIN_FAT_RING``): contrast swirls in the right
  atrium/ventricle and the vena cava reach any blood-relative threshold, but they are
  ringed by blood, not fat.
- Aortic wall on enhanced studies: undiluted contrast in the superior vena cava and arm
  veins (>= 2000 HU, up to the 3071 HU ceiling) casts streaks, bright and dark bands
  along the rays through it (beam hardening and photon starvation, as metal does;
  Barrett & Keat, RadioGraphics 2004;24:1679). On both real arterial-phase studies
  (LIDC-IDRI 0001, 0003) everything the blood-relative threshold found in the aorta was
  such a streak: a thin bright band in the lumen, 10-18 mm from the vein, pointing at
  it. A streak is a line through its source, so a candidate that is elongated and
  whose long axis points at undiluted contrast within ``STREAK_REACH_MM`` is not
  counted (``_is_streak``); a plaque lies along the wall or is compact.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage as ndi

from inference.analyzer.bone import large_labels
from inference.analyzer.evidence import component_evidence
from inference.analyzer.kernel import standard_equivalent
from inference.analyzer.morphology import (
    ball_mm,
    crop_box,
    dilate_ball,
    dilate_near,
    erode,
    grow,
    shrink,
)
from inference.analyzer.types import Measure, WorkGrid

logger = logging.getLogger(__name__)

CALCIUM_HU = 130.0
"""Agatston 1990, at 120 kVp."""
BLOOD_SD_MULTIPLE = 3.0
"""Enhanced studies: calcium threshold = blood-pool median + at least 3 robust SD, more
when many voxels are tested (``_sd_multiple``: fewer than 0.5 expected noise voxels)."""
DENSE_CONTRAST_ML = 1.0
"""On enhanced studies, a >= 1 ml body above the blood-relative calcium threshold is bone
or undiluted contrast (SVC, arm veins), not plaque: single coronary and aortic plaques
are far smaller (phantom plaques 0.01-0.4 ml; real ones rarely exceed ~0.5 ml)."""
METAL_SLICE_MM2 = 20.0
"""A slice holding this much metal (>= STREAK_METAL_HU: a device body, sternal wire loops)
carries streaks of +-100-200 HU across it: its calcium is not scored. A lead (1-2 mm)
stays below the area."""
STREAK_METAL_HU = 3000.0
"""Metal saturates a 12-bit scanner at 3071 HU; dense cortex and calcified tumour stay
below 3000 (the real Lung-PET-CT-Dx case has 140 mm2 per slice at 2500-2976 HU, no metal)."""
SHELL_INSIDE_MM = 5.0
"""Coronary territory reaches 5 mm inside the heart outline (partial volume of the groove)."""
AORTIC_ROOT_MARGIN_MM = 8.0
"""Aortic root, valve and its calcium are kept out of the coronary score by this margin."""
MIN_AREA_MM2 = 1.0
METAL_HU = 2000.0
"""Calcified plaque stays below ~1500 HU; above 2000 is metal (or undiluted contrast)."""
METAL_MARGIN_MM = 5.0
STREAK_MIN_ELONGATION = 2.0
"""A streak candidate's in-plane long/short axis ratio (square root of the second-moment
eigenvalue ratio) is at least 2: a line segment, whose direction is defined (geometry: a
disk or a square of pixels reads 1.0-1.4). The two streaks on the real studies read 3-41."""
STREAK_MAX_ANGLE_DEG = 30.0
"""The long axis of a streak points at its source within 30 degrees: a pixelated segment
of 4-14 pixels has a direction uncertain by about one pixel over its length (atan(1/2) =
27 degrees for a 2-pixel-wide, 4-pixel-long one); geometry, not fitted."""
STREAK_REACH_MM = 30.0
"""Undiluted contrast this close (in-plane) can be a candidate's streak source: the
superior vena cava lies against the ascending aorta and the arch, and 30 mm spans an
ascending aorta of normal calibre (< 40 mm, the dilatation limit of ``mapping``) from the
vein's side to the far wall; the descending aorta is farther from the veins."""
STREAK_SOURCE_HU = 1500.0
"""A streak source on enhanced studies: above any calcified plaque (which stays below
~1500 HU, ``METAL_HU``) and any mixed iodinated blood (an arterial-phase aorta reads
150-500 HU; ``enhanced_blood`` caps blood at 700 HU): undiluted or little-diluted contrast
(a 10-20 mm vena cava reads 1500-3000 HU with partial volume), dense cortex or metal.
Physics of the materials, not fitted."""
STREAK_ZONE_MM = 20.0
"""Within this distance of a streak source a candidate of any shape is taken as a streak
fragment: the near half of a normal ascending aorta (radius < 20 mm, the 40 mm dilatation
limit of Hiratzka 2010, ``aorta``) seen from the vena cava that lies against it. Anatomy,
not fitted; the far half (20-40 mm) keeps the shape test (``_is_streak``) only."""
WALL_MARGIN_MM = 6.0
MAX_PLAQUE_Z_MM = 25.0
"""Coronary plaques are a few mm to ~15 mm long and follow the vessel around the
heart; a bright line over more than 25 mm of z is a lead or wire."""
FAT_HU = (-195.0, -45.0)
"""Epicardial / pericardial fat window (Rosito et al., Circulation 2008;117:605, Framingham
Heart Study; the usual CT fat range)."""
FAT_RING_MM = (1.0, 4.0)
"""In-plane ring around a candidate lesion where epicardial fat is looked for: beyond 1 mm
of partial volume, within the 3-5 mm of an epicardial coronary artery's outer diameter."""
MIN_FAT_RING = 0.1
"""Enhanced studies: a coronary plaque sits in the wall of an artery that runs in the
epicardial fat (anatomy), so its 1-4 mm ring is part vessel and part fat: about a quarter
to a half fat by geometry for a 3-5 mm artery, even against the myocardium. Contrast
swirls and layering inside the right atrium, ventricle or superior vena cava are ringed
by blood (0-5 % fat on two real arterial-phase studies); 10 % leaves room for partial
volume on 2.5-5 mm slices. Phantom physics / anatomy, not fitted."""
DENSE_BLOOD_SD = 2.0
"""Blood above the aortic pool median + 2 robust SD (2.3 % of the pool's own voxels for
Gaussian noise, scattered, never a 1 ml body) is denser iodinated blood than the aorta's:
the right heart or vena cava before mixing (statistics, not fitted)."""
MIN_POOL_VOXELS = 100
"""Work voxels (~0.4-1 ml at 2 mm) for a median and robust SD of the blood pool with a
standard error under 0.15 SD (1.25 / sqrt(100) for the median): statistics, not fitted."""


def calcium_kvp_factor(kvp: float | None) -> float:
    """Calcium CT number at ``kvp`` over that at 120 kVp (1.0 when kVp is unknown).

    Inverse of the published down-scaling factors (Zhou, Zhang et al. 2021: 0.88 at
    100 kVp, 0.63 at 70 kVp), linear in kVp in between, extrapolated above 120 kVp
    with the 100-120 kVp slope (0.006 per kV).
    """
    if kvp is None or not 60.0 <= kvp <= 150.0:
        return 1.0
    if kvp > 120.0:
        return 1.0 / (1.0 + 0.006 * (kvp - 120.0))
    return 1.0 / float(np.interp(kvp, (70.0, 100.0, 120.0), (0.63, 0.88, 1.0)))


def iodine_kvp_factor(kvp: float | None) -> float:
    """Iodine enhancement at ``kvp`` over that at 120 kVp (1.0 when unknown).

    Straight line through the CT numbers of an iodinated agent at 100/120/140 kVp
    (682/506/329 HU; Radiol Res Pract 2012:150980, Table 1), x1.70 at 80 kVp.
    """
    if kvp is None or not 60.0 <= kvp <= 150.0:
        return 1.0
    return 1.0 - 0.01745 * (kvp - 120.0)


def _weight(peak: float, f: float = 1.0) -> int:
    return 1 if peak < 200 * f else 2 if peak < 300 * f else 3 if peak < 400 * f else 4


def _fat_ring_fraction(sl: np.ndarray, lesion: np.ndarray, px_mm: float) -> float:
    """Fraction of the 1-4 mm in-plane ring around ``lesion`` that is fat (-195..-45 HU)."""
    pad = int(np.ceil(FAT_RING_MM[1] / px_mm)) + 1
    ys, xs = np.nonzero(lesion)
    y0, y1 = max(0, ys.min() - pad), min(sl.shape[0], ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(sl.shape[1], xs.max() + pad + 1)
    dist = ndi.distance_transform_edt(~lesion[y0:y1, x0:x1], sampling=px_mm)
    ring = (dist > FAT_RING_MM[0]) & (dist <= FAT_RING_MM[1])
    v = sl[y0:y1, x0:x1][ring]
    return float(((v >= FAT_HU[0]) & (v <= FAT_HU[1])).mean()) if v.size else 0.0


def agatston(grid: WorkGrid, region: np.ndarray, exclude: np.ndarray,
             threshold: float = CALCIUM_HU, kvp_factor: float = 1.0,
             need_fat: bool = False) -> tuple[float, float, np.ndarray]:
    """(score, calcium volume ml, work-grid mask of calcified voxels) inside ``region``.

    ``threshold`` is the calcium threshold in HU (130 x ``kvp_factor`` unenhanced);
    the density weights step at 200/300/400 HU x ``kvp_factor``. ``need_fat`` (enhanced
    studies): a lesion counts only with epicardial fat around it (``MIN_FAT_RING``).
    """
    fz, fy, fx = grid.factors
    vox = grid.source.voxels
    nz, ny, nx = vox.shape
    sx, sy, sz = grid.source.spacing
    px_mm2 = sx * sy
    score = 0.0
    n_vox = 0
    hit = np.zeros(grid.shape, dtype=bool)
    for k in np.nonzero(region.any(axis=(1, 2)))[0]:
        allowed = np.repeat(np.repeat(region[k] & ~exclude[k], fy, 0), fx, 1)[:ny, :nx]
        for z in range(k * fz, min(nz, (k + 1) * fz)):
            sl = vox[z]
            calc = (sl >= threshold) & allowed
            if not calc.any():
                continue
            labels, n = ndi.label(calc)
            areas = np.bincount(labels.ravel())
            peaks = ndi.maximum(sl, labels, index=np.arange(1, n + 1))
            # Metal (pacemaker leads, clips, stents) and its blooming are not calcium.
            metal = sl >= METAL_HU
            near_metal = (ndi.binary_dilation(metal, iterations=max(1, int(METAL_MARGIN_MM / sx)))
                          if metal.any() else metal)
            for lab in range(1, n + 1):
                area = areas[lab] * px_mm2
                if area < MIN_AREA_MM2 or peaks[lab - 1] >= METAL_HU:
                    continue
                if metal.any() and near_metal[labels == lab].any():
                    continue
                if need_fat and _fat_ring_fraction(sl, labels == lab, sx) < MIN_FAT_RING:
                    continue  # inside a chamber or vessel: iodinated blood, not plaque
                score += area * _weight(float(peaks[lab - 1]), kvp_factor)
                n_vox += int(areas[lab])
                ys, xs = np.nonzero(labels == lab)
                hit[k, ys // fy, xs // fx] = True
    score *= sz / 3.0
    return score, n_vox * grid.source.voxel_volume_ml, hit


def _dense_bodies(grid: WorkGrid, thr: float, within: Box | None) -> np.ndarray:
    """Large dense bodies (bone, undiluted contrast) on enhanced studies, grown by 1 voxel;
    only ``within`` that box (``_grown_bodies``).

    Used instead of the bone mask there: the enhanced lumen is over 200 HU and falls
    into the bone mask, so the wall next to it would always be excluded as "near bone"
    (aortic calcium on contrast studies always 0). Above the blood-relative calcium
    threshold the lumen is not dense; bone and venous contrast form bodies of >= 1 ml,
    plaques do not (a plaque fused with the vertebral cortex is lost, as before).
    """
    return _grown_bodies(grid.hu >= thr, grid.voxel_ml, DENSE_CONTRAST_ML, within)


Box = tuple[slice, ...]


def _grown_bodies(mask: np.ndarray, voxel_ml: float, min_ml: float, within: Box | None
                  ) -> np.ndarray:
    """``grow(large_components(mask, voxel_ml, min_ml))`` inside the box ``within`` (False
    outside it; all False for None): the components are sized over the whole volume, and
    the one-voxel growth inside the box reads them within one voxel of it. The callers
    read the bodies only in a box (``_read_box``); kept and grown over the whole volume
    they cost a large part of the calcium stage.
    """
    out = np.zeros(mask.shape, dtype=bool)
    if within is None:
        return out
    labels, keep = large_labels(mask, voxel_ml, min_ml)
    if not keep.any():
        return out
    grown = tuple(slice(max(0, b.start - 1), min(s, b.stop + 1))
                  for b, s in zip(within, mask.shape, strict=True))
    big = grow(keep[labels[grown]])
    out[within] = big[tuple(slice(b.start - g.start, b.stop - g.start)
                            for b, g in zip(within, grown, strict=True))]
    return out


def _read_box(near: np.ndarray, structure: np.ndarray) -> Box | None:
    """The box in which ``dilate_near(mask, structure, near)`` reads ``mask``: the box of
    ``near`` grown by the structure's half-size (``dilate_within``); None if empty."""
    box = crop_box(near)
    if box is None:
        return None
    return tuple(slice(max(0, b.start - h), min(n, b.stop + h))
                 for b, h, n in zip(box, (s // 2 for s in structure.shape), near.shape,
                                    strict=True))


def _heart_core(heart: np.ndarray) -> np.ndarray:
    """The heart's interior (blood and myocardium, uniform): where noise is measured."""
    core = shrink(heart, iterations=2)
    return core if core.sum() >= 50 else heart


def _metal_slices(grid: WorkGrid) -> np.ndarray:
    """Work-grid slices whose full-resolution metal (>= 3000 HU) covers >= 20 mm^2."""
    vox = grid.source.voxels
    fz = grid.factors[0]
    sx, sy, _ = grid.source.spacing
    per = (vox >= STREAK_METAL_HU).sum(axis=(1, 2)) * sx * sy
    out = np.zeros(grid.shape[0], dtype=bool)
    for k in range(grid.shape[0]):
        out[k] = bool(per[k * fz:(k + 1) * fz].max(initial=0) >= METAL_SLICE_MM2)
    return out


def _long_lines(hit: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Dense components longer than any coronary plaque along z (device leads, wires)."""
    out = np.zeros_like(hit)
    box = crop_box(hit)  # labelled in the hits' box: the same components
    if box is None:
        return out
    labels, n = ndi.label(hit[box], structure=np.ones((3, 3, 3), dtype=bool))
    sub = out[box]
    for lab, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is not None and (sl[0].stop - sl[0].start) * spacing[0] > MAX_PLAQUE_Z_MM:
            sub[sl] |= labels[sl] == lab
    return out


def _kvp(grid: WorkGrid) -> float | None:
    acq = getattr(grid.source, "acquisition", None)
    return getattr(acq, "kvp", None)


def enhanced_blood(grid: WorkGrid, seeds: np.ndarray) -> np.ndarray:
    """Enhanced blood inside ``seeds`` (heart, aortic lumen): 130-700 HU x iodine factor.

    Only inside the seeds: the vertebral body next to the descending aorta is in the
    same HU band and touches it, so a connected region would take it in.
    """
    f = iodine_kvp_factor(_kvp(grid))
    hu = grid.hu
    return seeds & (hu >= 60.0 + 70.0 * f) & (hu < 700.0 * f)


def arterial_pool(grid: WorkGrid, heart: np.ndarray, aorta: np.ndarray) -> np.ndarray:
    """The enhanced blood a coronary plaque must stand out from: the aortic lumen.

    The coronary lumen carries aortic blood, so a plaque lies next to blood of the
    aorta's attenuation, not next to the right heart's. The heart as a whole is a poor
    reference: in a pulmonary-arterial or early phase the right atrium, ventricle and
    pulmonary trunk hold undiluted or swirling contrast (400-1000+ HU) beside unenhanced
    left-heart blood, which spreads the pool's SD (95 HU on a real arterial-phase study
    against 35 HU in its aorta) and lifts the threshold above real plaques, while the
    swirls still reach above it. The aorta's core (eroded by one voxel, off its wall)
    is used when it holds ``MIN_POOL_VOXELS``; otherwise the heart and aorta together.
    """
    core = enhanced_blood(grid, shrink(aorta))
    if int(core.sum()) >= MIN_POOL_VOXELS:
        return core
    return enhanced_blood(grid, heart | aorta)


def _sd_multiple(n_tested: int) -> float:
    """SD multiple so that fewer than 0.5 of ``n_tested`` Gaussian noise voxels exceed it."""
    from scipy.stats import norm
    if n_tested <= 1:
        return BLOOD_SD_MULTIPLE
    return max(BLOOD_SD_MULTIPLE, float(norm.isf(0.5 / n_tested)))


def pool_stats(grid: WorkGrid, pool: np.ndarray) -> tuple[float, float]:
    """(median, robust SD) of the full-resolution voxels of the blood pool's core."""
    fz, fy, fx = grid.factors
    core = shrink(pool) if pool.sum() > 200 else pool
    if int(core.sum()) < MIN_POOL_VOXELS:
        # A thin pool (5 mm slices: one or two work slices of aorta) erodes to nothing;
        # its median was NaN and the threshold fell back to 130 HU inside enhanced blood.
        core = pool
    idx = np.argwhere(core)
    idx = idx[np.linspace(0, len(idx) - 1, min(len(idx), 20000)).astype(int)]
    vox = grid.source.voxels
    vals = vox[np.minimum(idx[:, 0] * fz, vox.shape[0] - 1),
               np.minimum(idx[:, 1] * fy, vox.shape[1] - 1),
               np.minimum(idx[:, 2] * fx, vox.shape[2] - 1)].astype(np.float32)
    med = float(np.median(vals))
    return med, float(1.4826 * np.median(np.abs(vals - med)))


def _iodine_bodies(grid: WorkGrid, pool: np.ndarray, within: Box | None) -> np.ndarray:
    """Blood denser than the aortic pool (right heart, vena cava, pulmonary trunk) in
    bodies of >= ``DENSE_CONTRAST_ML``, grown by one voxel; only ``within`` that box.

    Level: pool median + ``DENSE_BLOOD_SD`` robust SD. A coronary lumen carries the
    aorta's blood and stays below it (a 3-4 mm lumen holds no 1 ml body), while
    undiluted or swirling contrast forms connected bodies of many millilitres, and its
    edges and swirls reach the calcium threshold beside them.
    """
    if within is None:
        return np.zeros(grid.shape, dtype=bool)
    med, sd = pool_stats(grid, pool)
    return _grown_bodies(grid.hu >= med + DENSE_BLOOD_SD * sd, grid.voxel_ml,
                         DENSE_CONTRAST_ML, within)


def _is_streak(lesion: np.ndarray, dense: np.ndarray, px_mm: float) -> bool:
    """Whether an in-plane candidate ``lesion`` is a streak from ``dense`` (module doc):
    elongated, with its long axis pointing at undiluted contrast within reach (the source
    is a body 10-20 mm across: its nearest pixel need not lie on the streak's line)."""
    ys, xs = np.nonzero(lesion)
    return _points_are_streak(ys, xs, np.nonzero(dense), px_mm)


def _points_are_streak(ys: np.ndarray, xs: np.ndarray, dense_yx: tuple[np.ndarray, ...],
                       px_mm: float) -> bool:
    """``_is_streak`` on the lesion's pixel coordinates (row-major order) and those of the
    streak sources (``np.nonzero(dense)``), so a caller testing many lesions of one
    plane finds the sources once and reads each lesion in its own box."""
    dy, dx = dense_yx
    if ys.size < 3 or dy.size == 0:
        return False
    cy, cx = float(ys.mean()), float(xs.mean())
    w, v = np.linalg.eigh(np.cov(np.vstack([ys - cy, xs - cx])))
    if w[1] < STREAK_MIN_ELONGATION ** 2 * max(float(w[0]), 1.0 / 12.0):
        return False  # compact (the floor: a one-pixel-wide line's own width, 1/12 px^2)
    # A line through the source: some undiluted contrast within reach lies along the
    # long axis (either way), within the angular tolerance.
    ry, rx = dy - cy, dx - cx
    dist = np.hypot(ry, rx)
    near = (dist > 0) & (dist * px_mm <= STREAK_REACH_MM)
    if not near.any():
        return False
    cos = np.abs(v[0, 1] * ry[near] + v[1, 1] * rx[near]) / dist[near]
    return bool(cos.max() >= np.cos(np.radians(STREAK_MAX_ANGLE_DEG)))


def _kernel_note(blur_mm: float, lsf_var: float | None) -> str:
    """What the threshold note says when the score was read on the standard-kernel copy."""
    if blur_mm <= 0.0:
        return ""
    return (f"; image sharper than a standard kernel (edge spread variance {lsf_var:.2f} mm2): "
            f"scored after in-plane smoothing by {blur_mm:.1f} mm")


def _without_streaks(calc: np.ndarray, slab: np.ndarray, px_mm: float,
                     not_source: np.ndarray | None = None) -> np.ndarray:
    """``calc`` (a slab's candidates) less the components that are streaks: elongated and
    pointing at undiluted contrast (``_is_streak``), or lying in the near half of the
    aorta beside dense contrast, whatever their shape (``_near_dense_contrast``).

    ``not_source`` (full resolution, in plane): voxels that cast no streak here, the
    aortic wall's own plaques and the vertebral bodies the descending aorta lies on.
    """
    dense = np.asarray((slab >= METAL_HU).any(axis=0), dtype=bool)
    near = _near_dense_contrast(slab, px_mm, not_source)
    if not dense.any() and not near.any():
        return calc
    # Each component is read in its own box: its in-plane footprint there, offset to
    # plane coordinates (row-major, as ``np.nonzero`` of the whole plane gives them).
    dense_yx = np.nonzero(dense)
    labels, _ = ndi.label(calc)
    out = calc.copy()
    for lab, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        comp = labels[sl] == lab
        own = comp.any(axis=0)
        ys, xs = np.nonzero(own)
        if (near[sl[1], sl[2]][own].any()
                or _points_are_streak(ys + sl[1].start, xs + sl[2].start, dense_yx, px_mm)):
            out[sl][comp] = False
    return out


def _near_dense_contrast(slab: np.ndarray, px_mm: float,
                         not_source: np.ndarray | None) -> np.ndarray:
    """In-plane pixels within ``STREAK_ZONE_MM`` of a streak source (``STREAK_SOURCE_HU``).

    On the images of both real arterial-phase studies (LIDC-IDRI 0001 crop50 and
    off-centre crop, 0003 sharp and off-centre crop) the vein's streaks crossed the
    blood-relative threshold in fragments of 1-4 pixels, too short to have a direction
    for ``_is_streak``, 9-19 mm from a vena cava that read 1560-3000 HU (below
    ``METAL_HU`` on some slices). Such a candidate is not counted: the note says that
    wall calcium beside dense venous contrast is not scored.
    """
    src = np.asarray((slab >= STREAK_SOURCE_HU).any(axis=0), dtype=bool)
    if not_source is not None:
        src &= ~not_source
    if not src.any():
        return src
    return np.asarray(ndi.distance_transform_edt(~src, sampling=px_mm) <= STREAK_ZONE_MM)


def _outside_wall(bodies: np.ndarray, wall: np.ndarray) -> np.ndarray:
    """The bodies lying mostly outside the aortic wall shell.

    Dense contrast in the superior vena cava runs beside the ascending aorta, and
    its edges and streaks reach the calcium threshold on the aortic wall next to it
    (seen on the LIDC-IDRI 0003 arterial-phase study). A large calcified plaque is a
    dense body too, but it lies in the wall: only bodies with most of their voxels
    outside the shell are taken as contrast.
    """
    box = crop_box(bodies)  # labelled in the bodies' box: the same components
    if box is None:
        return bodies
    labels, n = ndi.label(bodies[box])
    size = np.bincount(labels.ravel(), minlength=n + 1)
    inside = np.bincount(labels[wall[box]], minlength=n + 1)  # as weighting by 0 or 1
    keep = inside < 0.5 * size
    keep[0] = False
    out = np.zeros_like(bodies)
    out[box] = keep[labels]
    return out


def calcium_threshold(grid: WorkGrid, pool: np.ndarray | None,
                      region: np.ndarray | None = None) -> tuple[float, float, str]:
    """(threshold HU, kVp factor, note) for calcium: 130 HU x kVp factor, or above blood.

    ``pool`` is the enhanced blood-pool mask on enhanced studies (None unenhanced);
    ``region`` the work-grid voxels that will be tested (sets the SD multiple).
    """
    kvp = _kvp(grid)
    f = calcium_kvp_factor(kvp)
    thr = CALCIUM_HU * f
    note = (f"threshold {thr:.0f} HU (130 HU at 120 kVp, corrected for {kvp:g} kVp)" if kvp
            else "kVp unknown: 120 kVp assumed for the 130 HU threshold")
    if pool is not None and pool.any():
        enhanced = bool(np.median(grid.hu[pool]) >= 100.0)
        fz, fy, fx = grid.factors
        med, sd = pool_stats(grid, pool)
        n = int(region.sum()) * fz * fy * fx if region is not None else 0
        mult = _sd_multiple(n)
        if enhanced:
            thr = max(thr, med + mult * sd)
            note = (f"contrast-enhanced: calcium threshold {thr:.0f} HU = blood pool {med:.0f} "
                    f"HU + {mult:.1f} SD ({sd:.0f} HU); calcium fainter than the iodinated "
                    "blood is missed, so the score is a lower bound")
        elif med + mult * sd > thr:
            # Unenhanced but noisy: 130 HU lies within a few noise SD of blood and
            # myocardium; the same rule keeps noise out, at the cost of faint plaques.
            thr = med + mult * sd
            note = (f"noisy series: calcium threshold raised to {thr:.0f} HU = heart "
                    f"{med:.0f} HU + {mult:.1f} SD ({sd:.0f} HU); the score is a lower bound")
    return thr, f, note


def coronary_measures(grid: WorkGrid, heart: np.ndarray, med: np.ndarray, bone: np.ndarray,
                      aorta: np.ndarray, contrast: bool, chest_wall: np.ndarray,
                      spine: np.ndarray | None = None) -> dict[str, Measure]:
    """Agatston-style score of the coronary territory (heart surface shell).

    On enhanced studies the threshold is relative to the measured blood pool
    (``calcium_threshold``) and the enhanced blood is never counted.
    """
    if not heart.any():
        return {"coronary_agatston": Measure(
            "coronary_agatston", None, "1", "Agatston-style coronary calcium score",
            note="heart not found in the field of view")}
    # Scored at a standard kernel's resolution: a sharper image is smoothed back to it.
    grid, blur_mm, lsf_var = standard_equivalent(grid)
    pool = arterial_pool(grid, heart, aorta) if contrast else _heart_core(heart)
    if contrast and not pool.any():
        return {"coronary_agatston": Measure(
            "coronary_agatston", None, "1", "Agatston-style coronary calcium score",
            note="not assessed: enhanced study but no blood pool to set a calcium threshold")}
    # The heart's surface shell, inside the mediastinum (not the sternum or costal
    # cartilages it touches), away from bone by 5 mm (partial volume of cortex) and
    # from the aortic root (valve calcium is not coronary calcium).
    sp = grid.spacing_zyx
    inner = erode(heart, ball_mm(SHELL_INSIDE_MM, sp))
    region = dilate_ball(heart, 6.0, sp) & med & ~inner
    thr, f, thr_note = calcium_threshold(grid, pool, region)
    if contrast:
        thr_note += ("; a lesion counts only with epicardial fat around it (contrast swirls "
                     "in the right heart and vena cava are ringed by blood)")
    thr_note += _kernel_note(blur_mm, lsf_var)
    streaky = _metal_slices(grid) if not contrast else np.zeros(grid.shape[0], dtype=bool)
    if streaky.any():
        region = region & ~streaky[:, None, None]
        thr_note += f"; {int(streaky.sum())} slice(s) with metal streaks not scored"
    if contrast:
        read = _read_box(region, ball_mm(5.0, sp))  # where ``exclude`` reads the bodies
        bone = (_dense_bodies(grid, thr, read) | _iodine_bodies(grid, pool, read)
                | (spine if spine is not None else False))
    # Read only inside ``region`` (agatston), so dilated only near it (dilate_near).
    exclude = (dilate_near(bone, ball_mm(5.0, sp), region)
               | dilate_near(aorta, ball_mm(AORTIC_ROOT_MARGIN_MM, sp), region)
               # Rib and sternal fragments too small for the bone mask: keep off the wall.
               | dilate_near(chest_wall, ball_mm(WALL_MARGIN_MM, sp), region))
    score, ml, hit = agatston(grid, region, exclude, thr, f, need_fat=contrast)
    leads = _long_lines(hit, grid.spacing_zyx)
    if leads.any():
        # A pacemaker or ICD lead runs through the heart for centimetres: not calcium.
        exclude |= grow(leads)
        score, ml, hit = agatston(grid, region, exclude, thr, f, need_fat=contrast)
    ev = (component_evidence(grid, hit, "coronary calcium"),) if hit.any() else ()
    return {
        "coronary_agatston": Measure("coronary_agatston", score, "1",
                                     "Agatston-style coronary calcium score (coronary "
                                     "territory: heart surface, no valves or aortic root)", ev,
                                     note=thr_note),
        "coronary_calcium_volume": Measure("coronary_calcium_volume", ml, "ml",
                                           f"coronary calcium volume (>= {thr:.0f} HU)"),
    }


def aortic_calcium_measures(grid: WorkGrid, aorta: np.ndarray, bone: np.ndarray,
                            contrast: bool, spine: np.ndarray | None = None
                            ) -> dict[str, Measure]:
    """Calcium volume in the aortic wall (>= 130 HU x kVp factor unenhanced; above the
    measured lumen + 3 SD enhanced, ``calcium_threshold``).

    The enhanced lumen is over 200 HU and so falls into the bone mask; it is taken out
    of it here, or the wall next to it would always be excluded as "near bone".
    """
    if not aorta.any():
        return {"aortic_calcium_volume": Measure(
            "aortic_calcium_volume", None, "ml", "aortic wall calcium volume",
            note="aorta not found")}
    # Scored at a standard kernel's resolution, as the coronaries are (``kernel``): on a
    # sharper image small wall plaques cross the threshold and grow (LIDC-IDRI 0001
    # ``sharp`` variant: 0.005 -> 0.027 ml).
    grid, blur_mm, lsf_var = standard_equivalent(grid)
    pool = enhanced_blood(grid, aorta) if contrast else _heart_core(aorta)
    wall = dilate_ball(aorta, 3.0, grid.spacing_zyx)
    thr, _, thr_note = calcium_threshold(grid, pool, wall)
    thr_note += _kernel_note(blur_mm, lsf_var)
    if contrast:
        thr_note += (f"; not scored within {STREAK_ZONE_MM:.0f} mm of dense contrast "
                     f"(>= {STREAK_SOURCE_HU:.0f} HU: its streaks)")
        # ``spine`` (vertebral bodies, filled) keeps thin endplate fragments out too.
        # The dense bodies are read only near the wall (the 4 mm ``dilate_near`` below); the
        # iodine bodies are judged whole (``_outside_wall``).
        whole = tuple(slice(0, n) for n in grid.shape)
        bone = (_dense_bodies(grid, thr, _read_box(wall, ball_mm(4.0, grid.spacing_zyx)))
                | (spine if spine is not None else False)
                | _outside_wall(_iodine_bodies(grid, pool, whole), wall))
    streaky = _metal_slices(grid) if not contrast else np.zeros(grid.shape[0], dtype=bool)
    if streaky.any():
        wall = wall & ~streaky[:, None, None]
        thr_note += f"; {int(streaky.sum())} slice(s) with metal streaks not scored"
    # The descending aorta lies on the spine: keep 4 mm away from bone.
    # Read only inside the wall shell, so dilated only near it (``dilate_near``: exact).
    bone = dilate_near(bone, ball_mm(4.0, grid.spacing_zyx), wall)
    fz, fy, fx = grid.factors
    vox = grid.source.voxels
    nz, ny, nx = vox.shape
    n = 0
    hit = np.zeros(grid.shape, dtype=bool)
    # Neither the wall's own plaques nor the vertebral cortex (the descending aorta
    # lies on it) are streak sources.
    not_sources = (wall | dilate_ball(spine, 4.0, grid.spacing_zyx)
                   if contrast and spine is not None else wall)
    for k in np.nonzero(wall.any(axis=(1, 2)))[0]:
        allowed = np.repeat(np.repeat(wall[k] & ~bone[k], fy, 0), fx, 1)[:ny, :nx]
        slab = vox[k * fz:min(nz, (k + 1) * fz)]
        calc = (slab >= thr) & allowed[None]
        # Single voxels are noise; keep 3-D groups of 3 or more.
        labels, m = ndi.label(calc)
        if m:
            sizes = np.bincount(labels.ravel())
            good = sizes >= 3
            good[0] = False
            calc = good[labels]
        if contrast and calc.any():
            calc = _without_streaks(calc, slab, grid.source.spacing[0],
                                    np.repeat(np.repeat(not_sources[k], fy, 0), fx, 1)[:ny, :nx])
        n += int(calc.sum())
        if calc.any():
            ys, xs = np.nonzero(calc.any(axis=0))
            hit[k, ys // fy, xs // fx] = True
    ml = n * grid.source.voxel_volume_ml
    ev = (component_evidence(grid, hit, "aortic wall calcium"),) if hit.any() else ()
    return {"aortic_calcium_volume": Measure(
        "aortic_calcium_volume", ml, "ml",
        f"aortic wall calcium volume (>= {thr:.0f} HU)", ev, note=thr_note)}
