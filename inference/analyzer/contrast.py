"""Contrast phase from the image: blood-pool and liver attenuation; header only as a hint.

Why from the image: ContrastBolusAgent is often empty, left over from a previous
series or names oral contrast only; the blood pool says what the scan really is.

- Blood pool: on the lung-bearing slices, the space between the lungs (convex hull of
  both lungs minus the lungs) holds the heart, aorta and pulmonary trunk. Its largest
  connected body of 130-700 HU (kVp-corrected), kept away from cortical bone, of at least
  ``MIN_POOL_ML``, whose edge reads darker than its interior (a lumen, not a marrow space
  inside a cortical shell: ``_walled_by_cortex``), is enhanced blood; without one the
  study is unenhanced (unenhanced blood is 30-55 HU; iodine raises it by ~25 HU per
  mg I/ml at 120 kVp).
- Phase: the time-attenuation curves reviewed by Bae (Radiology 2010;256:32-61) put the
  aorta near 300 HU (>= 250 HU, the diagnostic CTA target) at arterial timing, with
  the liver still below ~90 HU; at the portal venous phase (~70 s) blood falls to
  ~130-220 HU and the liver reaches ~100-110 HU (>= 50 HU over its unenhanced 55 HU).
  The liver (right upper quadrant under the right lung base) decides when it is in
  view; otherwise the blood-pool HU alone, said so in the evidence.
- Oral contrast in the stomach or bowel does not make a study enhanced: it lies below
  the lungs, outside the blood-pool region.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage as ndi

from inference.analyzer.calcium import calcium_kvp_factor, iodine_kvp_factor
from inference.analyzer.morphology import convex_hull_2d, crop_box
from inference.analyzer.types import Anatomy, WorkGrid

logger = logging.getLogger(__name__)

POOL_HU = (130.0, 700.0)
"""Enhanced blood at 120 kVp: above the densest unenhanced blood (~60 HU, haematocrit
high) by > 3 noise SD; below cortical bone and dense undiluted contrast."""
MIN_POOL_ML = 20.0
"""A heart chamber or the aorta over a few slices is > 20 ml; bone marrow islands and
partial volume of cortex are smaller."""
ARTERIAL_BLOOD_HU = 250.0
"""Diagnostic CT-angiography target (Bae 2010): at or above it, arterial timing."""
VENOUS_LIVER_HU = 90.0
"""Liver at the portal venous phase >= ~100 HU (unenhanced 55-65 HU + >= 40-50 HU);
arterial-phase liver stays below ~80 HU."""
CORTEX_HU = 700.0
"""Cortical bone is > 1000 HU at 120 kVp while the enhanced blood pool peaks at ~250-500 HU in
CT angiography (Bae, Radiology 2010); 700 HU (scaled by kVp) marks bone edges to keep
out of the blood-pool search."""
CORTEX_RIM_EXCESS_HU = 150.0
"""How much brighter than its interior the edge of a marrow space reads (phantom physics).
A 0.5-1 mm cortex (>= 1000 HU) takes at least a quarter of a 2 mm edge voxel around
250 HU marrow: the edge reads >= 190 HU above the interior (+220 HU measured on the
512-pixel phantom's vertebral bodies). A lumen's edge reads below its interior, but a
sharp kernel's edge overshoot lifts it: up to +106 HU on the sharp-kernel contrast cases
of the phantom cohort (seed 0, first 40 cases). The bound lies between the two."""
NON_CONTRAST = "non_contrast"
ENHANCED_PHASES = ("arterial", "venous", "delayed")


def is_enhanced(phase: str) -> bool:
    """True for a phase with iodinated blood (``arterial``, ``venous``, ``delayed``)."""
    return phase in ENHANCED_PHASES


def blood_pool_region(anatomy: Anatomy) -> np.ndarray:
    """Per slice, the space between the two lungs inside the body (heart and great vessels)."""
    region = np.zeros_like(anatomy.body)
    both = anatomy.lung_left.any(axis=(1, 2)) & anatomy.lung_right.any(axis=(1, 2))
    for k in np.nonzero(both)[0]:
        lungs = anatomy.lung_left[k] | anatomy.lung_right[k]
        region[k] = convex_hull_2d(lungs) & ~lungs & anatomy.body[k]
    return region


def enhanced_pool(grid: WorkGrid, region: np.ndarray, kvp: float | None) -> np.ndarray:
    """Largest 130-700 HU (at 120 kVp) body in ``region`` away from cortex; empty if < 20 ml."""
    f = iodine_kvp_factor(kvp)
    lo = 60.0 + (POOL_HU[0] - 60.0) * f
    hi = POOL_HU[1] * f
    hu = grid.hu
    bright = region & (hu >= lo) & (hu < hi)
    # Worked in the box of the bright voxels: the same components, labelled in the same
    # order (``_cortex_near`` for the cortex around them).
    box = crop_box(bright)
    if box is None:
        return np.zeros_like(region)
    cortex = _cortex_near(hu, CORTEX_HU * calcium_kvp_factor(kvp), box)
    labels, n = ndi.label(bright[box] & ~cortex)
    if n == 0:
        return np.zeros_like(region)
    sizes = np.bincount(labels.ravel()) * grid.voxel_ml
    sizes[0] = 0
    for best in np.argsort(-sizes):
        if best == 0 or sizes[best] < MIN_POOL_ML:
            break
        sub = labels == best
        comp = np.zeros_like(region)
        comp[box] = sub
        if _central(comp, region) and not _walled_by_cortex(sub, hu[box]):
            return comp
    return np.zeros_like(region)


def _cortex_near(hu: np.ndarray, thr: float, box: tuple[slice, ...]) -> np.ndarray:
    """``ndi.binary_dilation(hu > thr, iterations=2)[box]``, from ``box`` grown by the two
    voxels the dilation reaches: the same voxels, without dilating the whole volume."""
    grown = tuple(slice(max(0, b.start - 2), min(n, b.stop + 2))
                  for b, n in zip(box, hu.shape, strict=True))
    dilated = ndi.binary_dilation(hu[grown] > thr, iterations=2)
    return dilated[tuple(slice(b.start - g.start, b.stop - g.start)
                         for b, g in zip(box, grown, strict=True))]


def _walled_by_cortex(comp: np.ndarray, hu: np.ndarray) -> bool:
    """Is the component a marrow space inside a cortical shell rather than a lumen?

    Physics of the edge: a lumen's outermost voxels mix blood with the darker vessel
    wall or myocardium (40-60 HU) around it, so they read lower than its interior; a
    vertebral body's outermost voxels mix marrow with the cortical shell, which on
    the work grid is averaged below the 700 HU cortex mark (a 0.5-1 mm shell in a
    2 mm voxel), so they read well above the marrow inside (by more than
    ``CORTEX_RIM_EXCESS_HU``, which a sharp kernel's overshoot at a lumen's edge does
    not reach). Compared per voxel
    layer in plane (one-voxel axial erosion). A component with no interior (thinner
    than three voxels) is not a blood pool either.
    """
    in_plane = np.zeros((3, 3, 3), dtype=bool)
    in_plane[1] = ndi.generate_binary_structure(2, 1)
    interior = ndi.binary_erosion(comp, structure=in_plane)
    if not interior.any():
        return True
    rim = comp & ~interior
    return bool(np.median(hu[rim]) > np.median(hu[interior]) + CORTEX_RIM_EXCESS_HU)


def _central(comp: np.ndarray, region: np.ndarray) -> bool:
    """Is the component's centre in the middle of the region front to back?

    The vertebral bodies (trabecular bone 150-250 HU on thick or soft slices, where the
    cortex blurs below 700 HU) sit at the back of the space between the lungs and the
    sternum at its front; the heart chambers fill its middle. A pool whose centre lies
    in the back 25 % or front 15 % of the region's depth on its middle slice is bone.
    """
    zs, ys, _ = np.nonzero(comp)
    k = int(np.median(zs))
    rows = np.nonzero(region[k].any(axis=1))[0]
    if rows.size < 2:
        return False
    t = (float(np.median(ys[zs == k])) - rows.min()) / max(rows.max() - rows.min(), 1)
    # t runs 0..1 along the row index; which end is anterior is not known here, so both
    # ends are guarded by the larger margin.
    return 0.25 <= t <= 0.75


def _liver_hu(grid: WorkGrid, anatomy: Anatomy) -> float | None:
    """Median HU of the right upper quadrant under the right lung base, if in view.

    Slices below the last right-lung slice (towards the feet), body voxels on the
    patient's right half, soft tissue to enhanced parenchyma (0-250 HU), eroded by 5 mm
    so fat, ribs and the lung base partial volume stay out. None when fewer than 20 ml.
    """
    right = np.nonzero(anatomy.lung_right.any(axis=(1, 2)))[0]
    if right.size == 0:
        return None
    below = (np.arange(grid.shape[0]) < right.min()) if anatomy.cranial_sign > 0 else (
        np.arange(grid.shape[0]) > right.max())
    ks = np.nonzero(below & anatomy.body.any(axis=(1, 2)))[0]
    if ks.size == 0:
        return None
    ks = ks[np.argsort(np.abs(ks - (right.min() if anatomy.cranial_sign > 0
                                    else right.max())))][:8]
    xx = np.arange(grid.shape[2])[None, :]
    vals: list[np.ndarray] = []
    r = max(1, int(round(5.0 / grid.spacing_zyx[1])))
    for k in ks:
        cols = np.nonzero(anatomy.body[k].any(axis=0))[0]
        mid = (cols.min() + cols.max()) / 2.0
        half = (xx - mid) * anatomy.left_sign < -0.1 * (cols.max() - cols.min())
        soft = anatomy.body[k] & (grid.hu[k] >= 0.0) & (grid.hu[k] <= 250.0) & half
        soft = ndi.binary_erosion(soft, iterations=r)
        if soft.any():
            vals.append(grid.hu[k][soft])
    if not vals:
        return None
    v = np.concatenate(vals)
    if v.size * grid.voxel_ml < 20.0:
        return None
    return float(np.median(v))


def detect_contrast_phase(grid: WorkGrid, anatomy: Anatomy,
                          region: np.ndarray | None = None) -> tuple[str, str]:
    """(phase, evidence): ``non_contrast``, ``arterial`` or ``venous``, and why.

    ``region`` is where to look for the blood pool (default: between the lungs).
    Header values (``grid.source.acquisition``) only add to the evidence or break a
    tie when the blood-pool HU is between the phases and the liver is not in view.
    """
    acq = getattr(grid.source, "acquisition", None)
    kvp = getattr(acq, "kvp", None)
    agent = (getattr(acq, "contrast_agent", "") or "").strip()
    desc = (getattr(acq, "series_description", "") or "").strip()
    hints = []
    if agent:
        hints.append(f"header agent '{agent}'")
    if region is None:
        region = blood_pool_region(anatomy)
    if not region.any():
        return "unknown", "no mediastinum between two lungs in view" + (
            f"; {hints[0]}" if hints else "")
    pool = enhanced_pool(grid, region, kvp)
    f = iodine_kvp_factor(kvp)
    kv = f" at {kvp:g} kVp" if kvp else ""
    if not pool.any():
        soft = region & (grid.hu > 0.0) & (grid.hu < 100.0)
        blood = float(np.median(grid.hu[soft])) if soft.any() else float("nan")
        ev = f"no enhanced blood pool (mediastinal soft tissue {blood:.0f} HU{kv})"
        if agent:
            ev += f"; header agent '{agent}' not seen in the blood (oral only or mislabelled)"
        return NON_CONTRAST, ev
    blood = float(np.median(grid.hu[pool]))
    blood120 = 60.0 + (blood - 60.0) / f  # the same enhancement at 120 kVp
    liver = _liver_hu(grid, anatomy)
    ev = f"blood pool {blood:.0f} HU ({pool.sum() * grid.voxel_ml:.0f} ml){kv}"
    if liver is not None:
        liver120 = 55.0 + (liver - 55.0) / f
        ev += f", liver {liver:.0f} HU"
        if blood120 >= ARTERIAL_BLOOD_HU and liver120 < VENOUS_LIVER_HU:
            phase = "arterial"
        elif liver120 >= VENOUS_LIVER_HU:
            phase = "venous"
        else:
            phase = "arterial" if blood120 >= 200.0 else "venous"
            ev += " (between phases)"
    else:
        low = desc.lower()
        if blood120 >= ARTERIAL_BLOOD_HU:
            phase = "arterial"
        elif any(w in low for w in ("arter", "cta", "angio", "pe ", "embol")):
            phase = "arterial"
            ev += f"; series description '{desc}'"
        else:
            phase = "venous"
        ev += ", liver not in view: phase from the blood pool alone"
    if hints:
        ev += "; " + ", ".join(hints)
    logger.debug("contrast phase %s: %s", phase, ev)
    return phase, ev
