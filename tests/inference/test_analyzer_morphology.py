"""Morphology shortcuts give the same voxels as the scipy operations they replace, and the
analyzer's parallel stages give the same measures as the sequential ones."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from ctnode.settings import AnalyzerSettings
from inference.analyzer import analyze
from inference.analyzer.morphology import (
    ball_mm,
    dilate_ball,
    disk,
    distance_to,
    fill_holes_2d,
    grow,
    open_in_box,
    shrink,
)

SPACINGS = [(2.5, 1.64, 1.64), (2.0, 2.0, 2.0), (5.0, 1.5, 1.5), (1.0, 2.1, 2.1)]


def _blobs(seed: int, shape: tuple[int, int, int] = (18, 40, 48), level: float = 0.5
           ) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ndi.gaussian_filter(rng.random(shape), 1.5) > level


@pytest.mark.parametrize("seed", range(4))
def test_fill_holes_2d_is_slice_by_slice_binary_fill_holes(seed: int) -> None:
    mask = _blobs(seed)
    mask[2] = True  # a slice without background
    mask[3] = False  # a slice without foreground
    mask[4, 10:20, 10:20] = True
    mask[4, 13:17, 13:17] = False  # a closed hole
    expected = np.stack([ndi.binary_fill_holes(s) for s in mask])
    assert np.array_equal(fill_holes_2d(mask), expected)
    assert fill_holes_2d(mask)[4, 15, 15]


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("radius_mm", [2.0, 4.0, 7.5, 15.0])
def test_dilate_ball_is_binary_dilation_by_ball_mm(spacing: tuple[float, float, float],
                                                   radius_mm: float) -> None:
    rng = np.random.default_rng(int(radius_mm * 10))
    mask = rng.random((24, 44, 52)) > 0.996
    mask[0, 0, 0] = True  # reaches the array border
    expected = ndi.binary_dilation(mask, structure=ball_mm(radius_mm, spacing))
    assert np.array_equal(dilate_ball(mask, radius_mm, spacing), expected)
    assert not dilate_ball(np.zeros_like(mask), radius_mm, spacing).any()


@pytest.mark.parametrize("spacing", SPACINGS)
def test_distance_to_is_exact_within_reach_near_the_region(
        spacing: tuple[float, float, float]) -> None:
    target = _blobs(7, level=0.56)
    near = np.zeros_like(target)
    near[6:12, 15:30, 20:35] = True
    reach = 8.0
    full = ndi.distance_transform_edt(~target, sampling=spacing)
    got = distance_to(target, near, reach, spacing)
    inside = near & (full <= reach)
    assert inside.any()
    np.testing.assert_allclose(got[inside], full[inside])
    assert (got[near & (full > reach)] > reach).all()
    assert np.isinf(distance_to(np.zeros_like(target), near, reach, spacing)).all()


def _small_blobs(seed: int) -> np.ndarray:
    """Sparse blobs, some cut by the array's faces (where scipy's border rule matters)."""
    mask = _blobs(seed, level=0.62)
    mask[:, :3, 5:9] = True  # touches the y = 0 face
    mask[-2:, 20:24, -4:] = True  # touches the last z slice and x face
    return mask


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("iterations", [1, 3])
def test_grow_is_binary_dilation(seed: int, iterations: int) -> None:
    mask = _small_blobs(seed)
    within = _blobs(seed + 10, level=0.3)
    np.testing.assert_array_equal(grow(mask, iterations),
                                  ndi.binary_dilation(mask, iterations=iterations))
    np.testing.assert_array_equal(
        grow(mask, iterations, within),
        ndi.binary_dilation(mask, iterations=iterations, mask=within))
    assert not grow(np.zeros_like(mask), iterations).any()


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("structure", [None, disk(2), ball_mm(3.0, (2.5, 1.6, 1.6))],
                         ids=["cross", "disk", "ball"])
def test_shrink_and_open_in_box_are_scipy_erosion_and_opening(
        seed: int, structure: np.ndarray | None) -> None:
    mask = _small_blobs(seed)
    np.testing.assert_array_equal(shrink(mask, 2, structure),
                                  ndi.binary_erosion(mask, structure, iterations=2))
    if structure is not None:
        np.testing.assert_array_equal(open_in_box(mask, structure),
                                      ndi.binary_opening(mask, structure))
    full = np.ones_like(mask)  # fills the array: scipy's border is background
    np.testing.assert_array_equal(shrink(full, 1, structure), ndi.binary_erosion(full, structure))


def test_parallel_stages_measure_the_same_as_sequential() -> None:
    """The lung and central stages run side by side (``AnalyzerSettings.threads``) on
    read-only shared masks: a stage writing into one would raise, and one depending on
    the other's timing would differ here."""
    from phantom.presets import lesion_from_text
    from tests.inference.analyzer_synth import phantom_case

    volume, _ = phantom_case((lesion_from_text("nodule"), lesion_from_text("effusion")), seed=5)
    one = analyze(volume, AnalyzerSettings(threads=1))
    two = analyze(volume, AnalyzerSettings(threads=2))
    assert list(one.measures) == list(two.measures)
    assert {k: m.value for k, m in one.measures.items()} == {
        k: m.value for k, m in two.measures.items()}
    assert one.anatomy.body.flags.writeable and two.anatomy.lung_left.flags.writeable
