"""Nodule and mass candidates on generated phantoms: found where inserted, sized, not hila."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage as ndi

from ctnode.settings import AnalyzerSettings
from inference.analyzer.grid import make_work_grid
from inference.analyzer.nodules import (
    GGO_HU,
    ISOLATION_LIMIT,
    SOLID_HU,
    VESSEL_CALIBRE_MM,
    CandidateFeatures,
    _axial_axes,
    _chord_axes,
    _detect,
    _elongation,
    _ground_glass_part,
    _own_share,
    fine_isolation,
    hilar_anchors,
    hilar_weight,
    shape_probability,
    vessel_share,
)
from inference.analyzer.types import Anatomy, Lesion, WorkGrid
from inference.models.chest_quant import ChestQuantModel
from series_selector.types import HUVolume
from tests.inference.analyzer_synth import phantom_case

phantom = pytest.importorskip("phantom")


# Each phantom on the tests' coarse grid (128: 2.7 mm) and on a clinical in-plane
# spacing (256: 1.35 mm): a lesion found on one must be found on the other (issue 12:
# the presets' 40 mm mass and 10 mm nodule were missed at 256 and 512).
@pytest.fixture(scope="module", params=[128, 256], ids=["2.7mm", "1.35mm"])
def nodule_and_mass(request):  # type: ignore[no-untyped-def]
    lesions = (phantom.Nodule(40.0, "solid", phantom.LungSite("right", 0.35, 0.6, 0.75)),
               phantom.Nodule(14.0, "solid", phantom.LungSite("left", 0.7, 0.4, 0.7)))
    volume, truth = phantom_case(lesions, seed=1, matrix=request.param)
    return ChestQuantModel().predict(volume), truth


@pytest.fixture(scope="module", params=[128, 256], ids=["2.7mm", "1.35mm"])
def normal(request):  # type: ignore[no-untyped-def]
    volume, truth = phantom_case((), seed=1, matrix=request.param)
    return ChestQuantModel().predict(volume), truth


def _truth_centre(truth: dict, diameter: float) -> np.ndarray:
    for lesion in truth["lesions"]:
        if lesion["type"] == "nodule" and lesion["diameter_mm"] == diameter:
            return np.asarray(lesion["center_lps_mm"])
    raise AssertionError(f"no {diameter} mm nodule in the truth")


def test_mass_found_where_inserted_and_sized(nodule_and_mass) -> None:  # type: ignore[no-untyped-def]
    out, truth = nodule_and_mass
    mass = {f.key: f for f in out.findings}["lung_mass"]
    assert mass.probability is not None and mass.probability > 0.5
    ev = mass.evidence[0]
    assert np.linalg.norm(np.asarray(ev.center_lps) - _truth_centre(truth, 40.0)) < 10.0
    # The long axis as readers measure it: the full-resolution half-way contour grown
    # by at most the opening radius (0.5 r), which on this sphere also follows the
    # vessels touching it (a stated overestimate on phantoms; the readers' own
    # outlines of real masses are the reference in tests/evaluation/test_real_cases.py).
    assert 40.0 - 3.0 <= ev.diameter_mm <= 40.0 + 0.5 * 20.0 + 3.0
    assert ev.mask is not None and ev.mask.any()


def test_nodule_found_where_inserted_and_sized(nodule_and_mass) -> None:  # type: ignore[no-untyped-def]
    out, truth = nodule_and_mass
    nodule = {f.key: f for f in out.findings}["lung_nodule"]
    assert nodule.probability is not None and nodule.probability > 0.5
    ev = nodule.evidence[0]
    assert np.linalg.norm(np.asarray(ev.center_lps) - _truth_centre(truth, 14.0)) < 8.0
    # As for the mass: grown by at most the opening radius (0.5 r) along a vessel that
    # touches the sphere, which the 1.35 mm grid resolves (16.4 mm at 2.7 mm, 18.3 mm at
    # 1.35 mm: a vessel stub on one side).
    assert 14.0 - 3.0 <= ev.diameter_mm <= 14.0 + 0.5 * 7.0 + 3.0


def test_normal_phantom_has_no_nodule_or_mass(normal) -> None:  # type: ignore[no-untyped-def]
    out, _ = normal
    p = {f.key: f.probability for f in out.findings}
    # The hila of the phantom are lobulated blobs: penalised, below the threshold.
    assert p["lung_nodule"] < 0.5 and p["lung_mass"] < 0.5


def test_axial_axes_of_a_disk_and_a_bar() -> None:
    yy, xx = np.mgrid[:40, :40]
    disk = ((yy - 20) ** 2 + (xx - 20) ** 2 <= 10 ** 2)[None]
    long_ax, short_ax = _axial_axes(disk, (1.0, 1.0, 1.0))
    assert long_ax == pytest.approx(21.0, abs=1.0) and short_ax == pytest.approx(21.0, abs=1.5)
    # An ellipse of 30 x 10 pixels at 0.5 mm, tilted: 15 x 5 mm whatever the angle.
    t = np.deg2rad(30.0)
    u = (xx - 20) * np.cos(t) + (yy - 20) * np.sin(t)
    v = -(xx - 20) * np.sin(t) + (yy - 20) * np.cos(t)
    ellipse = ((u / 15.0) ** 2 + (v / 5.0) ** 2 <= 1.0)[None]
    long_ax, short_ax = _axial_axes(ellipse, (1.0, 0.5, 0.5))
    assert long_ax == pytest.approx(15.0, abs=0.7) and short_ax == pytest.approx(5.0, abs=0.7)


def test_elongation_tells_tube_from_ball() -> None:
    zz, yy, xx = np.mgrid[:31, :31, :31]
    ball = (zz - 15) ** 2 + (yy - 15) ** 2 + (xx - 15) ** 2 <= 8 ** 2
    tube = ((yy - 15) ** 2 + (xx - 15) ** 2 <= 4 ** 2)
    from scipy import ndimage as ndi

    sp = np.ones(3)
    assert _elongation(ndi.distance_transform_edt(ball), ball, sp) < 1.2
    assert _elongation(ndi.distance_transform_edt(tube), tube, sp) > 2.5


def test_settings_move_the_mass_size() -> None:
    assert AnalyzerSettings(mass_min_mm=25.0).mass_min_mm == 25.0


def test_vessel_share_falls_past_the_thickest_pulmonary_artery() -> None:
    mid, _ = VESSEL_CALIBRE_MM
    # Segmental vessels (4-7 mm) carry the whole vessel base rate; nothing in the lung
    # past the descending pulmonary artery's 16 mm upper limit of normal does.
    assert vessel_share(6.0) > 0.99
    assert vessel_share(mid) == pytest.approx(0.5)
    assert vessel_share(16.0) < 0.05 and vessel_share(25.0) < 1e-5
    shares = [vessel_share(float(d)) for d in np.arange(2.0, 40.0, 0.5)]
    assert all(a >= b for a, b in zip(shares, shares[1:], strict=False))


def _features(inscribed_mm: float, isolation: float = 0.43, hilar_weight: float = 0.0
              ) -> CandidateFeatures:
    return CandidateFeatures(isolation, 1.12, 0.5, 1.3 * inscribed_mm, 4.0, hilar_weight,
                             inscribed_mm=inscribed_mm)


def test_thick_isolated_blob_is_not_held_to_the_vessel_base_rate() -> None:
    """A round, fairly isolated blob: as thin as a vessel it is most likely a vessel
    junction; 38 mm thick (the A0001 adenocarcinoma's inscribed ball) it cannot be one."""
    assert shape_probability(_features(6.0)) < 0.5
    assert shape_probability(_features(38.0)) > 0.9
    # Vessels stay vessels however thick: a blob that continues with its own thickness.
    assert shape_probability(_features(38.0, isolation=0.95)) < 0.1
    # And the hila keep their penalty: a lobulated hilum is not called.
    assert shape_probability(_features(38.0, hilar_weight=1.0)) < 0.5


def _anatomy(airway: np.ndarray, lung_left: np.ndarray | None = None) -> Anatomy:
    empty = np.zeros_like(airway)
    return Anatomy(body=np.ones_like(airway),
                   lung_left=empty if lung_left is None else lung_left, lung_right=empty,
                   airway=airway, free_gas=empty, cranial_sign=1, left_sign=1, anterior_sign=1)


def test_hila_mirrored_when_only_one_main_bronchus_is_tracked() -> None:
    """Trachea down the midline (x = 70) then one bronchus going out to x = 110: the
    track ends in that bronchus, whose hilum is there; the other is its mirror image."""
    aw = np.zeros((60, 20, 140), dtype=bool)
    aw[20:, 9:12, 68:73] = True  # trachea, slices 20-59 (cranial up)
    for k in range(0, 20):
        x = 70 + 2 * (20 - k)
        aw[k, 9:12, x - 2:x + 3] = True
    anchors = hilar_anchors(_anatomy(aw), (1.0, 1.0, 1.0))
    xs = sorted(float(a[2]) for a in anchors)
    mid = float(np.argwhere(aw)[:, 2].mean())
    assert len(anchors) == 2
    assert xs[1] > 90.0 and xs[0] == pytest.approx(2 * mid - xs[1])
    # A track that ends in the trachea keeps the +-50 mm rule around its end, at
    # every level from 15 mm below it down to the lung bases (the carina may be lower).
    tr = np.zeros((140, 20, 140), dtype=bool)
    tr[100:, 9:12, 68:73] = True
    lung = np.zeros_like(tr)
    lung[10:130, 5:15, 80:130] = True
    anatomy = _anatomy(tr, lung)
    anchors = hilar_anchors(anatomy, (1.0, 1.0, 1.0))
    assert sorted({float(a[2]) for a in anchors}) == pytest.approx([20.0, 120.0])
    zs = sorted({float(a[0]) for a in anchors})
    # (the track's end is the mean of its lowest 15 mm: slice 107.5)
    assert max(zs) == pytest.approx(107.5 - 15.0) and min(zs) <= 10.0 + 40.0


def _blurred_slice(solid_r: float, ggo: np.ndarray | None = None, size: int = 96,
                   sigma_px: float = 1.2) -> tuple[np.ndarray, np.ndarray]:
    """A 0.8 mm-pixel slice: a solid disk (0 HU) in aerated lung (-870 HU), optionally a
    ground-glass (-550 HU) region, blurred as a scanner blurs; (HU, solid part)."""
    from scipy import ndimage as ndi

    yy, xx = np.mgrid[:size, :size]
    disk = (yy - size // 2) ** 2 + (xx - size // 2) ** 2 <= solid_r ** 2
    hu = np.full((size, size), -870.0)
    if ggo is not None:
        hu[ggo] = -550.0
    hu[disk] = 0.0
    hu = ndi.gaussian_filter(hu, sigma_px)
    level = (0.0 - 870.0) / 2.0
    return hu, hu >= level


def test_a_solid_nodule_has_no_ground_glass_part() -> None:
    """The blur rind of a solid nodule lies in the ground-glass band: it must not count."""
    hu, solid = _blurred_slice(12.0)
    band = (hu >= GGO_HU[0]) & ~solid
    assert band.any()  # the rind is there...
    ggo = _ground_glass_part(solid, band, np.zeros_like(solid), 0.8, 20.0)
    assert not ggo.any()  # ...and is not taken for ground glass


def test_a_part_solid_nodule_is_measured_whole() -> None:
    """A 20 mm solid part with ground glass 8 mm thick on one side: whole ~28 mm."""
    yy, xx = np.mgrid[:96, :96]
    halo = ((yy - 48) ** 2 + (xx - 48) ** 2 <= 22.5 ** 2) & (xx < 48)
    hu, solid = _blurred_slice(12.5, halo)
    band = (hu >= GGO_HU[0]) & ~solid
    ggo = _ground_glass_part(solid, band, np.zeros_like(solid), 0.8, 20.0)
    solid_long, _ = _chord_axes(solid, 0.8, 0.8)
    whole_long, _ = _chord_axes(solid | ggo, 0.8, 0.8)
    # (the half-way level against the lung lies farther out against ground glass)
    assert solid_long == pytest.approx(20.0, abs=2.0)
    assert whole_long == pytest.approx(36.0, abs=2.5)
    # Followed no farther than the reach (a share of the solid part's long axis).
    near = _ground_glass_part(solid, band, np.zeros_like(solid), 0.8, 2.0)
    assert _chord_axes(solid | near, 0.8, 0.8)[0] <= solid_long + 2 * 2.0 + 1.6
    # Ground glass that reaches the subpleural zone is dependent density: left out.
    subpleural = np.zeros_like(solid)
    subpleural[:, :30] = True
    assert not _ground_glass_part(solid, band, subpleural, 0.8, 20.0).any()


def test_ground_glass_band_agrees_with_parenchyma() -> None:
    from inference.analyzer.parenchyma import GGO_BAND

    assert GGO_HU == GGO_BAND


def test_hilar_weight_falls_over_the_lobar_bronchi() -> None:
    """Graded over the 1-3 cm of the lobar bronchi (Boyden 1955), not a ball's hard edge."""
    assert hilar_weight(0.0) > 0.95 and hilar_weight(10.0) == pytest.approx(0.9, abs=0.01)
    assert hilar_weight(20.0) == pytest.approx(0.5)
    assert hilar_weight(30.0) == pytest.approx(0.1, abs=0.01) and hilar_weight(np.inf) == 0.0
    ws = [hilar_weight(float(g)) for g in np.arange(0.0, 40.0, 0.5)]
    assert all(a > b for a, b in zip(ws, ws[1:], strict=False))
    # A 2.5 mm shift (one slice of airway track) at the steepest point moves a round
    # 20 mm candidate's probability by a quarter of what a hard edge moves it by.
    f = _features(20.0, isolation=0.4)
    step = abs(shape_probability(dataclasses.replace(f, hilar_weight=hilar_weight(21.25)))
               - shape_probability(dataclasses.replace(f, hilar_weight=hilar_weight(18.75))))
    edge = abs(shape_probability(dataclasses.replace(f, hilar_weight=0.0))
               - shape_probability(dataclasses.replace(f, hilar_weight=1.0)))
    assert step < 0.25 * edge


def _balls(centres_r: list[tuple[tuple[int, int, int], float]], shape=(60, 60, 120)
           ) -> np.ndarray:
    zz, yy, xx = np.indices(shape)
    out = np.zeros(shape, dtype=bool)
    for (cz, cy, cx), r in centres_r:
        out |= (zz - cz) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    return out


def test_a_thick_neighbour_across_a_neck_is_split_off() -> None:
    """A 40 mm ball touching a 25 mm one (a mass against the hilum): the big one's share
    stops at the neck; a ball that goes on as a tube of its own thickness keeps it."""
    sp = np.array([1.0, 1.0, 1.0])
    two = _balls([((30, 30, 40), 20.0), ((30, 30, 71), 12.5)])
    e = ndi.distance_transform_edt(two)
    c = np.array([30, 30, 40])
    dist = np.sqrt(((np.indices(two.shape) - c[:, None, None, None]) ** 2).sum(axis=0))
    own = _own_share(e, two, c, float(e[tuple(c)]), dist, sp)
    assert own[30, 30, 40] and not own[30, 30, 71]  # the neighbour's centre is its own
    assert not (two & own)[:, :, 66:].any()  # nothing past the neck
    # A vessel that continues with the same thickness has no neck: nothing is split.
    tube = _balls([((30, 30, 40), 12.0)])
    tube[:, :, 40:] |= _balls([((30, 30, 40), 12.0)])[:, :, 40:41].repeat(80, axis=2)
    e = ndi.distance_transform_edt(tube)
    own = _own_share(e, tube, c, float(e[tuple(c)]), dist, sp)
    assert (tube & ~own).sum() == 0


def _nodule_beside_vessel(vessel_mm: float, pixel_mm: float = 0.7, nodule_mm: float = 8.0,
                          slice_mm: float = 2.5) -> tuple[WorkGrid, np.ndarray, Lesion]:
    """A nodule in lung with a vessel of ``vessel_mm`` running along z through its
    isolation shell (centre one nodule diameter away), on ``pixel_mm`` pixels and
    ``slice_mm`` slices; the work grid (2 mm target) block-averages 3 x 3 pixels of 0.7 mm. Returns
    the grid, an all-lung ``ext`` and the work grid's candidate for the nodule."""
    n, nz = 120, int(60 / slice_mm)
    zz, yy, xx = np.ogrid[:nz, :n, :n]
    z_mm, y_mm, x_mm = zz * slice_mm, yy * pixel_mm, xx * pixel_mm
    c = (nz * slice_mm / 2, n * pixel_mm / 2, n * pixel_mm / 2)
    hu = np.full((nz, n, n), -850.0, dtype=np.float32)
    ball = (z_mm - c[0]) ** 2 + (y_mm - c[1]) ** 2 + (x_mm - c[2]) ** 2 <= (nodule_mm / 2) ** 2
    vessel = (y_mm - c[1]) ** 2 + (x_mm - (c[2] + nodule_mm)) ** 2 <= (vessel_mm / 2) ** 2
    hu[np.broadcast_to(vessel, hu.shape)] = 40.0
    hu[ball] = 20.0
    volume = HUVolume(voxels=hu.astype(np.int16), spacing=(pixel_mm, pixel_mm, slice_mm),
                      origin=(0.0, 0.0, 0.0), direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))
    settings = AnalyzerSettings()
    grid = make_work_grid(volume, settings.work_spacing_mm, settings.work_slice_mm)
    ext = np.ones(grid.hu.shape, dtype=bool)
    dense = ndi.binary_fill_holes((grid.hu >= SOLID_HU[0]) & (grid.hu <= SOLID_HU[1]))
    box = tuple(slice(0, s) for s in grid.hu.shape)
    found = _detect(dense, grid.hu < -500, grid.hu, grid.spacing_zyx, settings, box)
    centre = np.asarray(c) / np.asarray(grid.spacing_zyx)
    return grid, ext, min((les for les, _ in found),
                          key=lambda les: float(np.linalg.norm(np.asarray(les.centre) - centre)))


@pytest.mark.parametrize("vessel_mm", [2.0, 3.0])
def test_thin_vessel_beside_a_nodule_is_measured_at_full_resolution(vessel_mm: float) -> None:
    """Issue 12: on the 2.1 mm work grid of a 0.7 mm scan a 2-3 mm vessel in an 8 mm
    nodule's shell reads as thick as a 6 mm one, over half the nodule's radius, so the
    nodule read as a vessel junction. At full resolution it is under 0.4 of it."""
    grid, ext, les = _nodule_beside_vessel(vessel_mm)
    assert grid.factors == (1, 3, 3)
    assert les.isolation > ISOLATION_LIMIT  # the work grid's quantization
    fine = fine_isolation(grid, ext, les)
    assert fine is not None and fine < 0.4


def test_thick_vessel_beside_a_nodule_stays_a_junction_at_full_resolution() -> None:
    """The refinement measures, it does not just lower: a 6 mm vessel in the shell
    (0.75 of the radius, a vessel continuing, Murray's law) stays above the limit."""
    grid, ext, les = _nodule_beside_vessel(6.0)
    fine = fine_isolation(grid, ext, les)
    assert fine is not None and fine > ISOLATION_LIMIT + 0.1


def test_fine_isolation_not_needed_on_a_work_grid_of_full_resolution() -> None:
    grid, ext, les = _nodule_beside_vessel(2.0, pixel_mm=2.0)
    assert grid.factors == (1, 1, 1)
    assert fine_isolation(grid, ext, les) is None


def test_fine_isolation_not_used_on_slices_thicker_than_the_radius() -> None:
    """On 5 mm slices an 8 mm nodule's own section on the next slice lies in its shell;
    fine pixels would read it as a vessel, so the work grid's isolation stands."""
    grid, ext, les = _nodule_beside_vessel(2.0, slice_mm=5.0)
    assert grid.factors == (1, 3, 3) and les.radius_mm < 5.0
    assert fine_isolation(grid, ext, les) is None

