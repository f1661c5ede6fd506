"""Contrast phase: a vertebral body's marrow is not an enhanced blood pool.

Found on the 512 x 512 x 300 non-contrast benchmark phantom, read as "venous":
its trabecular bone (~250 HU) inside a cortex that the 2 mm work grid averages
below the 700 HU cortex mark made a 39 ml "blood pool" in front of the canal.
"""

from __future__ import annotations

import numpy as np

from inference.analyzer.contrast import _walled_by_cortex, enhanced_pool
from inference.analyzer.evaluation import IDENTITY
from inference.analyzer.types import WorkGrid
from series_selector.types import HUVolume


def _cylinder(shape: tuple[int, int, int], radius: float) -> np.ndarray:
    _, ny, nx = shape
    yy, xx = np.ogrid[:ny, :nx]
    disc = (yy - ny / 2) ** 2 + (xx - nx / 2) ** 2 <= radius ** 2
    return np.broadcast_to(disc, shape).copy()


def _grid(hu: np.ndarray) -> WorkGrid:
    vol = HUVolume(voxels=hu.astype(np.int16), spacing=(2.0, 2.0, 2.0), origin=(0.0, 0.0, 0.0),
                   direction=IDENTITY)
    return WorkGrid(hu=hu.astype(np.float32), factors=(1, 1, 1), source=vol)


def _marrow_and_lumen(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A 250 HU marrow cylinder in a 650 HU shell; a 300 HU lumen in a 45 HU wall."""
    body = _cylinder(shape, 12)
    inner = _cylinder(shape, 11)
    marrow = np.where(inner, 250.0, np.where(body, 650.0, 0.0))
    lumen = np.where(inner, 300.0, np.where(body, 45.0 + 0.5 * 255.0, 0.0))
    return marrow, lumen


def test_marrow_inside_cortex_is_walled_and_a_lumen_is_not() -> None:
    shape = (20, 40, 40)
    marrow, lumen = _marrow_and_lumen(shape)
    comp = _cylinder(shape, 12)
    assert _walled_by_cortex(comp, marrow)
    assert not _walled_by_cortex(comp, lumen)
    assert _walled_by_cortex(_cylinder(shape, 0.9), lumen)  # no interior: not a pool
    # A sharp kernel's overshoot lifts a lumen's edge ~100 HU above its interior: still a lumen.
    overshoot = np.where(_cylinder(shape, 11), 300.0, np.where(comp, 400.0, 0.0))
    assert not _walled_by_cortex(comp, overshoot)


def test_a_vertebral_body_alone_is_no_blood_pool() -> None:
    shape = (20, 40, 40)  # 20 x 80 x 80 mm: the 24 mm cylinder is ~36 ml
    marrow, lumen = _marrow_and_lumen(shape)
    region = np.ones(shape, dtype=bool)
    assert not enhanced_pool(_grid(marrow), region, None).any()
    assert enhanced_pool(_grid(lumen), region, None).any()
