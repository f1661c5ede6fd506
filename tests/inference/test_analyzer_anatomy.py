"""Anatomy stage of the analyzer: body, airway, left/right lungs, not-a-chest refusal."""

from __future__ import annotations

import numpy as np
import pytest

from ctnode.settings import AnalyzerSettings
from inference.analyzer.anatomy import segment_anatomy
from inference.analyzer.grid import axis_signs, block_factors, make_work_grid, upsample_mask
from inference.errors import NotChestError
from tests.inference.analyzer_synth import synthetic_chest


def _anatomy(chest, settings=None):
    s = settings or AnalyzerSettings()
    grid = make_work_grid(chest.volume, s.work_spacing_mm, s.work_slice_mm)
    return grid, segment_anatomy(grid, s)


def test_work_grid_block_means_and_maps_back() -> None:
    chest = synthetic_chest()
    grid = make_work_grid(chest.volume, 5.0, 5.0)
    assert grid.factors == (1, 2, 2)
    v = chest.volume.voxels.astype(np.float32)
    assert grid.hu[3, 10, 20] == pytest.approx(v[3, 20:22, 40:42].mean(), abs=1e-3)
    up = upsample_mask(np.ones(grid.shape, dtype=bool), grid)
    assert up.shape == chest.volume.shape
    # Work voxel centre sits between the 2x2 full voxels it averages.
    assert grid.to_lps(0, 0, 0) == pytest.approx(chest.volume.index_to_lps(0, 0.5, 0.5))


def test_block_factors_never_below_one() -> None:
    chest = synthetic_chest()
    assert block_factors(chest.volume, 0.5, 0.5) == (1, 1, 1)


@pytest.mark.parametrize("flip_x", [False, True])
def test_lungs_left_right_and_volume(flip_x: bool) -> None:
    chest = synthetic_chest(flip_x=flip_x)
    grid, anatomy = _anatomy(chest)
    assert axis_signs(chest.volume)[1] == (-1 if flip_x else 1)
    left = upsample_mask(anatomy.lung_left, grid)
    right = upsample_mask(anatomy.lung_right, grid)
    # Dice of each side against the truth: the side must not be swapped.
    for found, truth in ((left, chest.lung_left), (right, chest.lung_right)):
        dice = 2 * (found & truth).sum() / (found.sum() + truth.sum())
        assert dice > 0.9
    ml = (left.sum() + right.sum()) * chest.volume.voxel_volume_ml
    assert ml == pytest.approx(chest.truth["lung_volume"], rel=0.05)


def test_trachea_is_found_and_kept_out_of_the_lungs() -> None:
    chest = synthetic_chest()
    grid, anatomy = _anatomy(chest)
    assert anatomy.airway.any()
    assert not (anatomy.airway & anatomy.lungs).any()
    assert anatomy.cranial_sign == 1


def test_body_excludes_table_and_outside_air() -> None:
    chest = synthetic_chest()
    grid, anatomy = _anatomy(chest)
    # The table slab lies below the body ellipse: rows beyond y = cy + 115 mm.
    table_row = int((64 * 2.5 + 120) / (2.5 * grid.factors[1]))
    assert not anatomy.body[:, table_row, :].any()
    assert not anatomy.body[:, 0, :].any()


def test_volume_without_lungs_is_not_a_chest() -> None:
    chest = synthetic_chest(with_lungs=False)
    with pytest.raises(NotChestError, match="aerated lung"):
        _anatomy(chest)


def test_free_gas_is_not_lung() -> None:
    chest = synthetic_chest(with_lungs=False)
    vox = chest.volume.voxels.copy()
    vox[10:30, 50:80, 50:80] = -1000  # 560 ml of pure gas (a bowel loop, not lung)
    vol = type(chest.volume)(voxels=vox, spacing=chest.volume.spacing,
                             origin=chest.volume.origin, direction=chest.volume.direction)
    s = AnalyzerSettings()
    grid = make_work_grid(vol, s.work_spacing_mm, s.work_slice_mm)
    with pytest.raises(NotChestError):
        segment_anatomy(grid, s)


def test_mass_in_a_lung_cut_by_the_image_edge_is_in_the_body() -> None:
    """Issue 12: a tumour that the field of view cuts (Lung-PET-CT-Dx crop, LIDC-IDRI 0001
    crop50) touches the image border inside lung that opens onto it; it is no hole of the
    body outline, yet it is the patient's. The table outside stays out."""
    import dataclasses

    chest = synthetic_chest()
    v = chest.volume
    sx, sy, sz = v.spacing
    nz, ny, nx = v.shape
    cy, cx = ny * sy / 2, nx * sx / 2
    zz, yy, xx = np.ogrid[:nz, :ny, :nx]
    mass = ((zz * sz - (nz * sz / 2 - 5)) ** 2 + (yy * sy - cy) ** 2
            + (xx * sx - (cx + 95)) ** 2) <= 15.0 ** 2
    voxels = v.voxels.copy()
    voxels[mass & (voxels < -500)] = 40
    cut = int((cx + 95) / sx)  # the image ends through the mass and the left lung
    volume = dataclasses.replace(v, voxels=np.ascontiguousarray(voxels[:, :, :cut]))
    grid, anatomy = _anatomy(type(chest)(volume=volume, lung_left=chest.lung_left[:, :, :cut],
                                         lung_right=chest.lung_right[:, :, :cut],
                                         truth=chest.truth))
    mass_work = upsample_mask(np.ones(grid.shape, dtype=bool), grid) & mass[:, :, :cut]
    fz, fy, fx = grid.factors
    zs, ys, xs = np.nonzero(mass_work)
    in_body = anatomy.body[zs // fz, ys // fy, xs // fx]
    assert in_body.mean() > 0.95
    table_row = int((64 * 2.5 + 120) / (2.5 * grid.factors[1]))
    assert not anatomy.body[:, table_row, :].any()
