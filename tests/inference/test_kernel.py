"""Image sharpness from the image's own edges (``inference.analyzer.kernel``, issue 12).

LIDC-IDRI 0003's ``sharp`` variant (unsharp masking, amount 1, 1 mm) raised two 1.4-2.7 mm^2
foci in the epicardial fat from 372-428 HU to 535-638 HU, over the blood-relative calcium
threshold: coronary calcification 0.03 -> 0.95. Calcium is now scored on a copy brought
back to a standard kernel's resolution, measured by the edge spread's second moment.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from inference.analyzer.kernel import (
    REFERENCE_LSF_VAR_MM2,
    edge_spread_variance,
    standard_equivalent,
)
from inference.analyzer.types import WorkGrid
from series_selector.types import HUVolume

PX_MM = 0.8


def _chest(blur_mm: float, sharpen_mm: float = 0.0, seed: int = 0) -> HUVolume:
    """A soft-tissue ellipse (40 HU) with two air-filled 'lungs' in air, blurred by a
    Gaussian of ``blur_mm`` (the kernel), optionally unsharp-masked (amount 1)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:320, 0:320] * PX_MM
    body = ((yy - 128) / 100) ** 2 + ((xx - 128) / 120) ** 2 <= 1.0
    lung = (((yy - 128) / 60) ** 2 + ((np.abs(xx - 128) - 55) / 35) ** 2) <= 1.0
    img = np.where(body & ~lung, 40.0, -1000.0).astype(np.float32)
    img = ndi.gaussian_filter(img, blur_mm / PX_MM)
    if sharpen_mm:
        img = img + (img - ndi.gaussian_filter(img, sharpen_mm / PX_MM))
    vox = np.stack([img + rng.normal(0.0, 10.0, img.shape).astype(np.float32)
                    for _ in range(10)])
    return _volume(vox)


def _volume(vox: np.ndarray) -> HUVolume:
    return HUVolume(voxels=vox, spacing=(PX_MM, PX_MM, 2.5), origin=(0.0, 0.0, 0.0),
                    direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))


def test_smoothing_adds_its_variance() -> None:
    """Variances add under convolution: a 1 mm Gaussian adds ~1 mm^2."""
    v0 = edge_spread_variance(_chest(0.6))
    v1 = edge_spread_variance(_chest(np.hypot(0.6, 1.0)))
    assert v0 is not None and v1 is not None
    assert v1 - v0 == pytest.approx(1.0, abs=0.25)


def test_unsharp_masking_lowers_the_variance_by_its_own() -> None:
    """Amount 1 with a 1 mm Gaussian: weights 2 and -1, variance lower by 1 mm^2."""
    v0 = edge_spread_variance(_chest(0.6))
    vs = edge_spread_variance(_chest(0.6, sharpen_mm=1.0))
    assert v0 is not None and vs is not None
    assert v0 - vs == pytest.approx(1.0, abs=0.25)


def _grid(vol: HUVolume) -> WorkGrid:
    hu = vol.voxels.reshape(10, 160, 2, 160, 2).mean(axis=(2, 4)).astype(np.float32)
    return WorkGrid(hu=hu, factors=(1, 2, 2), source=vol)


def test_a_sharpened_image_is_brought_back_and_a_standard_one_is_left_alone() -> None:
    sharp = _grid(_chest(0.6, sharpen_mm=1.0))
    out, sd_mm, var = standard_equivalent(sharp)
    assert var is not None and var < REFERENCE_LSF_VAR_MM2 and sd_mm > 0.5
    after = edge_spread_variance(out.source)
    assert after == pytest.approx(REFERENCE_LSF_VAR_MM2, abs=0.3)
    assert out.shape == sharp.shape
    soft = _grid(_chest(1.2))
    same, sd_soft, _ = standard_equivalent(soft)
    assert same is soft and sd_soft == 0.0


def test_no_edges_no_estimate() -> None:
    vox = np.full((4, 64, 64), 40.0, dtype=np.float32)
    assert edge_spread_variance(_volume(vox)) is None


def test_coarse_pixels_are_not_judged() -> None:
    """2.7 mm pixels (the 128-matrix phantoms) hold a kernel's LSF within one pixel."""
    vol = _chest(0.6)
    coarse = HUVolume(voxels=vol.voxels, spacing=(2.7, 2.7, 2.5), origin=vol.origin,
                      direction=vol.direction)
    assert edge_spread_variance(vol) is not None
    assert edge_spread_variance(coarse) is None
