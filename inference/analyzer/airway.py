"""Trachea and main bronchi, tracked slice by slice from the thoracic inlet down.

Why tracking and not one 3-D region growing: below the carina the bronchi open
into the lungs and a region grown at -950 HU leaks into emphysematous lung. The
trachea is a round air column of 1.5-6 cm^2 near the midline (adult tracheal
diameter 13-25 mm; Breatnach et al., AJR 1984); we follow it caudally while each
step stays airway-sized, through the carina, and stop ~30 mm below it. When the
tracheal air is noisy (lower dose, sharper kernel), noise specks beside the wall read as
a second branch, a false carina: the track is then made on a lightly smoothed copy
(``AIR_MARGIN_Z``, ``DENOISE_SIGMA_MM``; issue 12).
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage as ndi

from inference.analyzer.morphology import dilate, disk

logger = logging.getLogger(__name__)

AIRWAY_HU = -900.0
TRACHEA_MIN_CM2 = 0.3
TRACHEA_MAX_CM2 = 6.5
SEED_RUN_MM = 20.0
MIDLINE_FRACTION = 0.25
"""The trachea's centre lies within this fraction of the body width of the body's
centre (the body may be cut by a targeted field of view)."""
BELOW_CARINA_MM = 30.0
"""Tracking stops this far below the carina: the right main bronchus is ~25 mm long and the
left ~50 mm (standard anatomy, Gray's Anatomy 41st ed.); past it come lobar bronchi, which
are lung, not central airway."""
STEP_REACH_MM = 10.0
"""How far (in-plane) the airway lumen may move from one slice to the next: half the adult
tracheal diameter (13-25 mm, Breatnach et al., AJR 1984), so a track never jumps to a
neighbouring air column."""


AIR_MARGIN_Z = 3.0
"""How many noise SDs the tracheal air must lie below ``AIRWAY_HU`` for the threshold to
hold the lumen: the three-sigma rule, at most 0.13% of lumen voxels (one-sided normal
tail) cross it, i.e. less than one voxel of a trachea's cross-section. Below that,
noise punches holes in the lumen and leaves air specks beside its wall, and a speck
that touches the track reads as a second branch, a false carina 30 mm above which the
track stops (issue 12: a 40 HU lower-dose copy of a real case)."""
DENOISE_SIGMA_MM = 1.2
"""In-plane Gaussian SD of the copy that is tracked when the air is too noisy (phantom
physics): the blurred edge of a -1000 to +40 HU step crosses ``AIRWAY_HU`` 1.3 SD inside
the air, so a lumen narrows by 1.3 x 1.2 = 1.6 mm per side and the narrowest adult main
bronchus (8 mm across; Gray's Anatomy 41st ed.) keeps more than half its radius, while
the white part of the noise drops by a factor ~2 on the 1.6-2.1 mm work grid."""


def find_airway(hu: np.ndarray, body: np.ndarray, spacing_zyx: tuple[float, float, float],
                cranial_sign: int) -> np.ndarray:
    """Mask of trachea and main bronchi; empty when the trachea is not in the field.

    Tracked on the image itself; when the noise of the tracheal air (measured on the
    first ``SEED_RUN_MM`` of the track) leaves less than ``AIR_MARGIN_Z`` SDs below
    ``AIRWAY_HU``, tracked again on a copy smoothed in plane by ``DENOISE_SIGMA_MM``
    (lower dose, larger patient, sharper kernel). Scans with quiet air keep the plain track.
    """
    airway = _track(hu, body, spacing_zyx, cranial_sign)
    if airway.any() and _air_margin_z(hu, airway, spacing_zyx, cranial_sign) < AIR_MARGIN_Z:
        dz, dy, dx = spacing_zyx
        quiet = ndi.gaussian_filter(hu.astype(np.float32),
                                    (0.0, DENOISE_SIGMA_MM / dy, DENOISE_SIGMA_MM / dx))
        smoothed = _track(quiet, body, spacing_zyx, cranial_sign)
        logger.info("airway: noisy tracheal air, tracked on a %.1f mm smoothed copy "
                    "(%d -> %d slices)", DENOISE_SIGMA_MM,
                    int(airway.any(axis=(1, 2)).sum()), int(smoothed.any(axis=(1, 2)).sum()))
        if smoothed.any():
            airway = smoothed
    return airway


def _air_margin_z(hu: np.ndarray, airway: np.ndarray, spacing_zyx: tuple[float, float, float],
                  cranial_sign: int) -> float:
    """(``AIRWAY_HU`` - median air HU) / robust SD, in the upper trachea's lumen core.

    The core is the lumen less one voxel (the wall's partial volume); median and MAD
    resist the few wall voxels left.
    """
    zs = np.nonzero(airway.any(axis=(1, 2)))[0]
    top = zs[::-1] if cranial_sign > 0 else zs
    run = max(1, int(round(SEED_RUN_MM / spacing_zyx[0])))
    vals = [hu[k][ndi.binary_erosion(airway[k])] for k in top[:run + 1]]
    air = np.concatenate(vals) if vals else np.empty(0)
    if air.size < 10:
        return np.inf
    med = float(np.median(air))
    sd = 1.4826 * float(np.median(np.abs(air - med)))
    return (AIRWAY_HU - med) / sd if sd > 0 else np.inf


def _track(hu: np.ndarray, body: np.ndarray, spacing_zyx: tuple[float, float, float],
           cranial_sign: int) -> np.ndarray:
    """The slice-by-slice track of trachea and main bronchi (module doc)."""
    dz, dy, dx = spacing_zyx
    px_cm2 = dy * dx / 100.0
    airway = np.zeros(hu.shape, dtype=bool)
    order = list(range(hu.shape[0] - 1, -1, -1) if cranial_sign > 0 else range(hu.shape[0]))
    # Seed: the first (most cranial) slice with a round central air column.
    start = None
    run = max(1, int(round(SEED_RUN_MM / dz)))
    for i, k in enumerate(order[: max(1, len(order) // 2)]):
        seed = _trachea_seed(hu[k] < AIRWAY_HU, body[k], px_cm2)
        if seed is not None and _continues(hu, body, order[i:i + run + 1], seed, px_cm2):
            start = i
            airway[k] = seed
            break
    if start is None:
        return airway
    prev = airway[order[start]]
    prev_area = prev.sum()
    carina_at: int | None = None
    reach = disk(max(1, int(round(STEP_REACH_MM / dy))))
    for i in range(start + 1, len(order)):
        k = order[i]
        # Only air near the previous slice's airway: bronchi run obliquely, but
        # never jump; this keeps the track out of low-density lung beside it.
        # ``dilate`` works in the previous airway's box: the same pixels.
        air = (hu[k] < AIRWAY_HU) & body[k] & dilate(prev[None], reach)[0]
        labels, n = ndi.label(air)
        if n == 0:
            break
        hit = np.unique(labels[prev & (labels > 0)])
        hit = hit[hit > 0]
        if hit.size == 0:
            break
        cur = np.isin(labels, hit)
        area = cur.sum()
        # Entering the lung: the tracked column suddenly widens.
        if area * px_cm2 > 2 * TRACHEA_MAX_CM2 or area > 2.5 * max(prev_area, 1):
            break
        if carina_at is None and hit.size >= 2:
            carina_at = i
        if carina_at is not None and (i - carina_at) * dz > BELOW_CARINA_MM:
            break
        airway[k] = cur
        prev, prev_area = cur, area
    return airway


def _continues(hu: np.ndarray, body: np.ndarray, slices: list[int], seed: np.ndarray,
               px_cm2: float) -> bool:
    """Whether ``seed`` continues as an airway-sized air column through ``slices``."""
    prev = seed
    for k in slices[1:]:
        labels, _ = ndi.label((hu[k] < AIRWAY_HU) & body[k])
        hit = np.unique(labels[prev & (labels > 0)])
        hit = hit[hit > 0]
        if hit.size == 0:
            return False
        cur = np.isin(labels, hit)
        if not TRACHEA_MIN_CM2 <= cur.sum() * px_cm2 <= 2 * TRACHEA_MAX_CM2:
            return False
        prev = cur
    return True


def _trachea_seed(air: np.ndarray, body: np.ndarray, px_cm2: float) -> np.ndarray | None:
    """The central, round, trachea-sized air component of one slice, if any."""
    if not body.any():
        return None
    cols = np.nonzero(body.any(axis=0))[0]
    rows = np.nonzero(body.any(axis=1))[0]
    cx, width = (cols[0] + cols[-1]) / 2.0, cols[-1] - cols[0] + 1
    labels, n = ndi.label(air & body)
    best, best_d = None, np.inf
    for lab, sl in enumerate(ndi.find_objects(labels), start=1):
        comp = labels[sl] == lab
        area = comp.sum() * px_cm2
        if not TRACHEA_MIN_CM2 <= area <= TRACHEA_MAX_CM2:
            continue
        h, w = comp.shape
        if comp.sum() < 0.5 * h * w or max(h, w) > 2.2 * min(h, w):
            continue  # not round enough
        yc = (sl[0].start + sl[0].stop) / 2.0
        xc = (sl[1].start + sl[1].stop) / 2.0
        if abs(xc - cx) > MIDLINE_FRACTION * width or not rows[0] < yc < rows[-1]:
            continue
        d = abs(xc - cx)
        if d < best_d:
            best, best_d = labels == lab, d
    return best
