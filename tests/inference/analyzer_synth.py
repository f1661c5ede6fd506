"""A tiny synthetic chest for the analyzer's unit tests (fast, known truth).

Not the full phantom (``phantom/``): just enough anatomy with exact lesion
volumes to check each measurement on 128x128 slices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from series_selector.types import HUVolume

SPACING = (2.5, 2.5, 5.0)  # x, y, z mm


@dataclass
class SynthChest:
    volume: HUVolume
    lung_left: np.ndarray
    lung_right: np.ndarray
    truth: dict[str, float] = field(default_factory=dict)


def _ellipsoid(shape: tuple[int, int, int], centre_mm: tuple[float, float, float],
               radii_mm: tuple[float, float, float]) -> np.ndarray:
    """Boolean ellipsoid; centre and radii in (z, y, x) mm from voxel 0."""
    sx, sy, sz = SPACING
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    return (((zz * sz - centre_mm[0]) / radii_mm[0]) ** 2
            + ((yy * sy - centre_mm[1]) / radii_mm[1]) ** 2
            + ((xx * sx - centre_mm[2]) / radii_mm[2]) ** 2) <= 1.0


def synthetic_chest(
    *,
    shape: tuple[int, int, int] = (40, 128, 128),
    emphysema_fraction: float = 0.0,
    ggo_radius_mm: float = 0.0,
    consolidation_radius_mm: float = 0.0,
    with_lungs: bool = True,
    flip_x: bool = False,
    seed: int = 0,
) -> SynthChest:
    """A body with two lungs (-860 HU, noise 25 HU), heart, spine, trachea and a table.

    Slice index grows towards the head; column index grows towards patient left
    unless ``flip_x`` (then the direction matrix says so).
    """
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    sx, sy, sz = SPACING
    cy, cx = ny * sy / 2, nx * sx / 2
    hu = np.full(shape, -1000.0, dtype=np.float32)
    zz, yy, xx = np.ogrid[:nz, :ny, :nx]
    body = (((yy * sy - cy) / 110.0) ** 2 + ((xx * sx - cx) / 150.0) ** 2) <= 1.0
    body = np.broadcast_to(body, shape)
    hu[body] = 40.0
    table_rows = slice(int((cy + 118) / sy), int((cy + 124) / sy))
    hu[:, table_rows, int((cx - 120) / sx):int((cx + 120) / sx)] = 200
    zc = nz * sz / 2
    right = _ellipsoid(shape, (zc - 5, cy - 5, cx - 65), (85, 80, 50))
    left = _ellipsoid(shape, (zc - 5, cy - 5, cx + 65), (85, 80, 50))
    if not with_lungs:
        right[:] = False
        left[:] = False
    lungs = left | right
    hu[lungs] = -860.0
    heart = _ellipsoid(shape, (zc - 40, cy - 40, cx + 10), (40, 45, 40)) & ~lungs
    hu[heart] = 40.0
    spine = (((yy * sy - (cy + 75)) ** 2 + (xx * sx - cx) ** 2) <= 18.0 ** 2)
    hu[np.broadcast_to(spine, shape)] = 250.0
    trachea = ((yy * sy - (cy - 20)) ** 2 + (xx * sx - cx) ** 2) <= 9.0 ** 2
    top = int((zc + 30) / sz)
    if with_lungs:
        hu[top:, :, :][np.broadcast_to(trachea, (nz - top, ny, nx))] = -1000.0
    truth: dict[str, float] = {"lung_volume": float(lungs.sum()) * sx * sy * sz / 1000.0}
    if emphysema_fraction > 0:
        pick = lungs & (rng.random(shape) < emphysema_fraction)
        hu[pick] = -985.0
    if ggo_radius_mm > 0:
        ggo = _ellipsoid(shape, (zc, cy, cx - 70), (ggo_radius_mm,) * 3) & right
        hu[ggo] = -550.0
        truth["ggo_ml"] = float(ggo.sum()) * sx * sy * sz / 1000.0
    if consolidation_radius_mm > 0:
        cons = _ellipsoid(shape, (zc - 20, cy, cx + 65), (consolidation_radius_mm,) * 3) & left
        hu[cons] = 20.0
        truth["consolidation_ml"] = float(cons.sum()) * sx * sy * sz / 1000.0
    hu += rng.normal(0.0, 25.0, shape).astype(np.float32)
    # True emphysema fraction below -950 after noise, measured on the lung mask.
    truth["laa950"] = float((hu[lungs] < -950).mean() * 100.0) if lungs.any() else 0.0
    voxels = np.clip(hu, -1024, 3071).astype(np.int16)
    direction = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    left_mask, right_mask = left, right
    if flip_x:
        voxels = voxels[:, :, ::-1].copy()
        left_mask, right_mask = left[:, :, ::-1], right[:, :, ::-1]
        direction = (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    volume = HUVolume(voxels=voxels, spacing=SPACING, origin=(-cx, -cy, -400.0),
                      direction=direction, series_uid="1.2.3.4")
    return SynthChest(volume=volume, lung_left=left_mask, lung_right=right_mask, truth=truth)


def phantom_case(lesions: tuple = (), seed: int = 0, **spec_kw: object):  # type: ignore[no-untyped-def]
    """(volume, truth) of a small generated phantom (``phantom`` package), ~1 s."""
    from inference.analyzer.evaluation import phantom_volume
    from phantom import generate_phantom, small_spec

    ph = generate_phantom(small_spec(tuple(lesions), seed=seed, **spec_kw))
    return phantom_volume(ph), ph.truth
