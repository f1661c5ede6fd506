"""Trachea and main bronchi, tracked slice by slice from the thoracic inlet down.

Why tracking and not one 3-D region growing: below the carina the bronchi open
into the lungs and a region grown at -950 HU leaks into emphysematous lung. The
trachea is a round air column of 1.5-6 cm^2 near the midline (adult tracheal
diameter 13-25 mm; Breatnach et al., AJR 1984); we follow it caudally while each
step stays airway-sized, through the carina, and stop ~30 mm below it.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage as ndi

from inference.analyzer.morphology import disk

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


def find_airway(hu: np.ndarray, body: np.ndarray, spacing_zyx: tuple[float, float, float],
                cranial_sign: int) -> np.ndarray:
    """Mask of trachea and main bronchi; empty when the trachea is not in the field."""
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
    reach = disk(max(1, int(round(STEP_REACH_MM / dy))))[0]
    for i in range(start + 1, len(order)):
        k = order[i]
        # Only air near the previous slice's airway: bronchi run obliquely, but
        # never jump; this keeps the track out of low-density lung beside it.
        air = (hu[k] < AIRWAY_HU) & body[k] & ndi.binary_dilation(prev, structure=reach)
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
