"""L1 from the image content (issues 12 and 13): Pickhardt's L1 <= 110 HU threshold is
measured at L1 or not at all, and "not assessed" says the true reason.

L1 is counted from the ribs (the lowest rib head is T12's) and the discs below it, both
anchored on the spinal canal. Real cases come from the session cache; phantoms are small.
"""

from __future__ import annotations

import dataclasses
from functools import cache
from typing import Any

import pytest

from ctnode.settings import AnalyzerSettings
from inference.analyzer.anatomy import segment_anatomy
from inference.analyzer.grid import make_work_grid
from inference.analyzer.spine import _discs, find_l1, vertebral_bodies
from series_selector.types import AcquisitionInfo

phantom = pytest.importorskip("phantom")

KEY = "vertebral_trabecular_hu"


def _real(name: str, variant: str = "") -> Any:
    from tests.conftest import real_analysis

    return real_analysis(name, variant).analysis


# --- Real cases ------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["", "crop70", "noise40", "sharp"])
@pytest.mark.real_analysis("lidc_idri_0001")
def test_real_l1_is_measured_where_the_scan_covers_it(variant: str) -> None:
    """LIDC-IDRI 0001 reaches L2. Checked by eye on a mid-sagittal reformat and a
    posterior coronal MIP with the levels marked: its lowest ribs (short, floating) leave
    the spine at about z -270 mm; the discs lie at about -267, -295 and -322 mm (thin,
    between dense endplates); L1 is the body between -295 and -322 mm, and its marrow is
    faint (about 65 HU: osteoporotic range). It was "not assessed" before (the enhanced
    aorta joined the spine mask, and the lowest ribs, sloping down beside L1-L2, made L1
    look rib-bearing); a box-mean disc rule alone took the faint body middles for discs
    and measured the T12/L1 disc (141 HU)."""
    analysis = _real("lidc_idri_0001", variant)
    m = analysis.measures[KEY]
    assert m.value is not None, m.note
    assert 30.0 <= m.value <= 110.0, m.note  # faint marrow: not the disc or the endplates
    assert "L1" in m.note and "rib" in m.note
    roi = m.evidence[0]
    assert roi.bbox is not None
    vol = analysis.grid.source
    zs = [vol.index_to_lps(float(k), 0.0, 0.0)[2] for k in (roi.bbox[0], roi.bbox[3] - 1)]
    assert all(-320.0 <= z <= -297.0 for z in zs), zs
    if variant:
        base = _real("lidc_idri_0001").measures[KEY].value
        assert abs(m.value - base) <= 20.0, (m.value, base)


@pytest.mark.parametrize("name", ["lungpetctdx_A0001", "lidc_idri_0003"])
@pytest.mark.real_analysis
def test_real_l1_not_covered_says_so(name: str) -> None:
    """Lung-PET-CT-Dx A0001 ends in the thoracic spine (ribs down to its last slice);
    LIDC-IDRI 0003 ends inside L1 (its L1/L2 disc is not in view). Not assessed, and the
    note names the coverage, not a failure to tell bodies from discs."""
    m = _real(name).measures[KEY]
    assert m.value is None
    assert m.note.startswith("not assessed") and "field of view" in m.note, m.note
    assert "told apart" not in m.note


# --- Phantoms --------------------------------------------------------------------------


@cache
def _phantom(spec_kw: tuple[tuple[str, Any], ...]) -> tuple[Any, tuple[float, float] | None]:
    """(volume, the true L1 z range) of small_spec(seed=3, **spec_kw), generated once for
    all the image variants of one specification (read-only: shared between tests)."""
    from inference.analyzer.evaluation import phantom_volume

    ph = phantom.generate_phantom(phantom.small_spec(seed=3, **dict(spec_kw)))
    ph.hu.setflags(write=False)
    vol = dataclasses.replace(phantom_volume(ph), acquisition=AcquisitionInfo(
        kvp=float(ph.spec.kvp), contrast_agent=""))
    truth = next((tuple(v["z_range_mm"]) for v in ph.truth["anatomy"]["vertebral_levels"]
                  if v["name"] == "L1"), None)
    return vol, truth


def _phantom_l1(variant: str = "", **kw: Any
                ) -> tuple[list[float], str, tuple[float, float] | None]:
    """(z of L1's slices, why, the phantom's true L1 z range) for small_spec(seed=3, **kw)
    seen through the image ``variant``."""
    from phantom.variation import IMAGE_VARIANTS

    vol, truth = _phantom(tuple(sorted(kw.items())))
    if variant:
        vol = IMAGE_VARIANTS[variant](vol)
    st = AnalyzerSettings()
    grid = make_work_grid(vol, st.work_spacing_mm, st.work_slice_mm)
    anatomy = segment_anatomy(grid, st)
    l1, _, why = find_l1(grid, anatomy, vertebral_bodies(grid, anatomy))
    return [grid.to_lps(float(k), 0.0, 0.0)[2] for k in l1], why, truth


@pytest.mark.parametrize("kw", [{}, {"scoliosis_deg": 25.0}, {"variant": "crop70"}],
                         ids=["plain", "scoliosis25", "crop70"])
def test_phantom_l1_is_the_true_l1(kw: dict[str, Any]) -> None:
    zs, why, truth = _phantom_l1(**kw)
    assert zs, why
    assert truth is not None
    assert all(truth[0] <= z <= truth[1] for z in zs), (zs, truth)


def test_phantom_thick_sections_without_a_disc_are_not_counted() -> None:
    """On 5 mm sections neither disc of L1 is resolved: the level would rest on the rib
    count alone (a 12th rib lost to a tight field of view put LIDC-IDRI 0003 crop50 a
    level too high, reading T12 as L1 at 206 HU), so it is not measured."""
    zs, why, truth = _phantom_l1(variant="thick5")
    assert truth is not None and not zs
    assert "neither disc of L1" in why


@pytest.mark.real_analysis("lidc_idri_0003")
def test_real_cropped_case_is_not_counted_from_the_ribs_alone() -> None:
    """LIDC-IDRI 0003 ends above L1/L2 (original: not assessed); its 50 % crop loses the
    12th rib's shape, and without a resolved disc it must not measure a level."""
    from tests.conftest import real_analysis

    m = real_analysis("lidc_idri_0003", "crop50").analysis.measures["vertebral_trabecular_hu"]
    assert m.value is None, m.note


def test_phantom_crop50_is_not_counted_from_a_cut_spine() -> None:
    """A 50 % field of view cuts the phantom's spine low down (the canal is lost there):
    not assessed, saying so, never a level counted from the ribs still in view."""
    zs, why, truth = _phantom_l1(variant="crop50")
    assert truth is not None and not zs
    assert "field of view" in why


def test_phantom_ending_above_l1_says_coverage() -> None:
    zs, why, truth = _phantom_l1(z_extent_mm=200.0, z_offset_mm=60.0)
    assert truth is None and not zs
    assert "field of view" in why


# --- The disc rule --------------------------------------------------------------------


def test_a_faint_body_between_its_endplates_is_not_a_disc() -> None:
    """Profile of box means (HU) along z, 2.5 mm slices: bodies with a faint middle (as
    faint as a disc) and dense endplates, and short faint discs. Only the discs are found:
    a disc's endplates are close, a body's are its height apart."""
    body = [400.0] + [90.0] * 8 + [400.0]  # 25 mm body, 20 mm of faint marrow
    disc = [85.0, 80.0]  # 5 mm disc
    seq = body + disc + body + disc + body
    profile = dict(enumerate(seq))
    assert _discs(profile, 2.5, 1.0) == [11, 23]
    # With no endplate between them, one long faint run is a body's marrow, not a disc.
    flat = {k: 90.0 for k in range(12)} | {-1: 400.0, 12: 400.0}
    assert _discs(flat, 2.5, 1.0) == []
