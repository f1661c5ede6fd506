"""Heart, aorta, vertebrae, calcium and contrast on phantom variants (issues 12 and 13).

Content-based anatomy: the contrast phase is read from the blood pool and liver, the
calcium threshold follows kVp and the measured blood pool, L1 is counted from the ribs
and the cardiothoracic ratio is taken on one slice. Small phantoms (5 mm slices).
"""

from __future__ import annotations

import dataclasses
from functools import cache

import pytest

from ctnode.settings import AnalyzerSettings
from inference.analyzer import analyze
from inference.analyzer.anatomy import segment_anatomy
from inference.analyzer.calcium import calcium_kvp_factor, iodine_kvp_factor
from inference.analyzer.contrast import detect_contrast_phase, is_enhanced
from inference.analyzer.grid import make_work_grid
from series_selector.types import AcquisitionInfo
from tests.conftest import real_analysis

phantom = pytest.importorskip("phantom")

FAST = dict(slice_spacing_mm=5.0)


def _volume(lesions: tuple = (), seed: int = 1, agent: str = "", **kw: object):  # type: ignore[no-untyped-def]
    from inference.analyzer.evaluation import phantom_volume
    ph = phantom.generate_phantom(phantom.small_spec(lesions, seed=seed, **{**FAST, **kw}))
    vol = dataclasses.replace(phantom_volume(ph), acquisition=AcquisitionInfo(
        kvp=float(ph.spec.kvp), contrast_agent=agent))
    return vol, ph.truth


@cache
def _case(name: str):  # type: ignore[no-untyped-def]
    cases = {
        "normal": ((), {}),
        # 2.5 mm: at 5 mm an osteoporotic body's thin cortex may blur into its disc, and L1
        # is then reported as not assessed; 2.5 mm resolves it.
        "low_bone": ((phantom.LowBoneDensity(75.0),), {"slice_spacing_mm": 2.5}),
        "arterial_calc": ((phantom.CoronaryCalcification("lad", 0.3, 10.0, 4.0, 800.0),
                           phantom.AorticCalcification("arch", 3, 8.0, 900.0)),
                          {"contrast_phase": "arterial"}),
        "arterial": ((), {"contrast_phase": "arterial"}),
        "kvp80": ((), {"kvp": 80.0}),
        "right_arch": ((), {"aortic_arch": "right"}),
        "scoliosis": ((), {"scoliosis_deg": 25.0}),
        "child": ((), {"body_scale": 0.6, "fov_mm": 300.0}),
        "upper": ((), {"z_extent_mm": 200.0, "z_offset_mm": 60.0}),
        "lower55": ((), {"z_extent_mm": 150.0, "z_offset_mm": -80.0}),
    }
    lesions, kw = cases[name]
    vol, truth = _volume(lesions, **kw)
    return analyze(vol, AnalyzerSettings()), truth


def _value(name: str, key: str) -> float | None:
    return _case(name)[0].measures[key].value


def test_contrast_phase_is_read_from_the_blood_pool() -> None:
    st = AnalyzerSettings()
    for kw, agent, want in (({}, "IOMEPROL", "non_contrast"),
                            ({"contrast_phase": "venous"}, "", "venous"),
                            ({"contrast_phase": "arterial", "kvp": 80.0}, "", "arterial")):
        vol, _ = _volume(agent=agent, **kw)
        grid = make_work_grid(vol, st.work_spacing_mm, st.work_slice_mm)
        phase, evidence = detect_contrast_phase(grid, segment_anatomy(grid, st))
        assert phase == want, evidence
        assert "blood" in evidence
        if agent:  # the header's agent is a hint, named but not believed over the image
            assert agent in evidence
    phase, evidence = detect_contrast_phase(_case("arterial")[0].grid,
                                            _case("arterial")[0].anatomy)
    assert phase == "arterial", evidence
    assert is_enhanced("venous") and not is_enhanced("non_contrast")


def test_kvp_factors_are_the_published_ones() -> None:
    assert calcium_kvp_factor(120.0) == 1.0 and calcium_kvp_factor(None) == 1.0
    assert calcium_kvp_factor(100.0) == pytest.approx(1 / 0.88)
    assert calcium_kvp_factor(70.0) == pytest.approx(1 / 0.63)
    assert calcium_kvp_factor(140.0) < 1.0
    assert iodine_kvp_factor(100.0) == pytest.approx(682 / 506, rel=0.02)


def test_calcium_on_a_contrast_study_counts_calcium_not_blood() -> None:
    analysis, _ = _case("arterial_calc")
    cor = analysis.measures["coronary_agatston"]
    assert cor.value is not None and cor.value > 10, cor.note
    assert "blood pool" in cor.note
    # The enhanced aorta is no longer taken for bone: its wall calcium is found.
    assert analysis.measures["aortic_calcium_volume"].value > 0.01
    assert _value("arterial", "coronary_agatston") == 0.0
    assert _value("arterial", "aortic_calcium_volume") == 0.0


def test_low_kvp_does_not_make_bone_or_blood_calcium() -> None:
    analysis, truth = _case("kvp80")
    assert analysis.measures["coronary_agatston"].value == 0.0
    assert "80 kVp" in analysis.measures["coronary_agatston"].note
    # L1 HU is brought back to its 120 kVp equivalent for Pickhardt's threshold.
    l1 = analysis.measures["vertebral_trabecular_hu"]
    assert l1.value == pytest.approx(truth["measurements"]["vertebral_trabecular_hu_nominal"],
                                     abs=25.0), l1.note


def test_vertebral_density_is_measured_at_l1_or_not_at_all() -> None:
    for name in ("normal", "low_bone"):
        analysis, truth = _case(name)
        m = analysis.measures["vertebral_trabecular_hu"]
        assert m.value == pytest.approx(
            truth["measurements"]["vertebral_trabecular_hu_nominal"], abs=20.0), m.note
        assert "L1" in m.note
    assert _value("low_bone", "vertebral_trabecular_hu") < 110.0 < _value(
        "normal", "vertebral_trabecular_hu")
    up = _case("upper")[0].measures["vertebral_trabecular_hu"]
    assert up.value is None and up.note.startswith("not assessed") and "L1" in up.note
    # A child's discs are too thin for 5 mm slices: not counted rather than miscounted.
    child = _case("child")[0].measures["vertebral_trabecular_hu"]
    assert child.value is None and "too thick" in child.note


def test_l1_slices_lie_in_the_true_l1() -> None:
    from inference.analyzer.spine import find_l1, vertebral_bodies
    st = AnalyzerSettings()
    for kw in ({}, {"scoliosis_deg": 30.0},
               {"body_scale": 0.6, "fov_mm": 300.0, "slice_spacing_mm": 2.5}):
        vol, truth = _volume(**kw)
        grid = make_work_grid(vol, st.work_spacing_mm, st.work_slice_mm)
        anatomy = segment_anatomy(grid, st)
        l1, _, why = find_l1(grid, anatomy, vertebral_bodies(grid, anatomy))
        assert l1, why
        lo, hi = next(v["z_range_mm"] for v in truth["anatomy"]["vertebral_levels"]
                      if v["name"] == "L1")
        zs = [vol.origin[2] + k * grid.spacing_zyx[0] for k in l1]
        assert all(lo - 3.0 <= z <= hi + 3.0 for z in zs), (kw, zs, lo, hi)


def test_cardiothoracic_ratio_on_one_slice() -> None:
    analysis, truth = _case("normal")
    ctr = analysis.measures["cardiothoracic_ratio"].value
    assert ctr == pytest.approx(truth["measurements"]["ctr_axial"], abs=0.05)
    # Only the lower part of the chest: never the 0.97 the fixed lung-fraction rule gave.
    low = _case("lower55")[0].measures["cardiothoracic_ratio"]
    assert low.value is None or low.value == pytest.approx(
        truth["measurements"]["ctr_axial"], abs=0.08)
    if low.value is None:
        assert low.note.startswith("not assessed")
    asc = _case("lower55")[0].measures["ascending_aorta_diameter"].value
    assert asc is None or asc < 40.0


def test_aorta_of_a_child_of_a_right_sided_arch_and_with_scoliosis() -> None:
    """Scoliosis (issue 13): the spine moves and rotates beside the aorta; the aorta is
    found relative to the vertebral body's front and the body's midline, not the
    spine's centroid (read as 16 mm ascending and 17 mm descending before)."""
    for name in ("child", "right_arch", "scoliosis"):
        analysis, truth = _case(name)
        m = truth["measurements"]
        for key, true in (("ascending_aorta_diameter", m["aorta_ascending_diameter_mm"]),
                          ("descending_aorta_diameter", m["aorta_descending_diameter_mm"])):
            got = analysis.measures[key].value
            assert got == pytest.approx(true, abs=5.0), (name, key, got, true)


@pytest.mark.parametrize("variant", ["", "crop50"])
@pytest.mark.real_analysis("lidc_idri_0003")
def test_real_right_heart_contrast_is_not_coronary_calcium(variant: str) -> None:
    """Issue 13: on LIDC-IDRI 0003 (pulmonary-arterial phase: undiluted contrast in the vena
    cava and right atrium, unenhanced left heart) contrast swirls at the cavo-atrial
    junction scored Agatston 173 (p 1.0) on the original and 0 on crop50. Against the
    aortic blood pool, and with epicardial fat required around a lesion, neither counts.
    The lumen (not wall + neighbours) is measured: descending 30.3 mm read as dilated."""
    r = real_analysis("lidc_idri_0003", variant)
    analysis, p = r.analysis, r.probabilities
    cor = analysis.measures["coronary_agatston"]
    assert cor.value is not None and cor.value < 5.0, cor.note
    assert "epicardial fat" in cor.note
    p_cor = p["coronary_artery_wall_calcification"]
    assert p_cor is not None and p_cor < 0.5
    desc = analysis.measures["descending_aorta_diameter"].value
    asc = analysis.measures["ascending_aorta_diameter"].value
    assert desc is not None and desc < 29.0
    assert asc is not None and asc < 36.0
    p_dil = p["thoracic_aortic_dilatation"]
    assert p_dil is not None and p_dil < 0.2


@pytest.mark.real_analysis("lidc_idri_0001")
def test_real_contrast_swirls_do_not_make_a_large_calcium_score() -> None:
    """Issue 13: LIDC-IDRI 0001 scored Agatston 771 almost all from contrast mixing in the
    right atrium and ventricle (lesions ringed by blood); what is left are lesions in the
    epicardial fat of the atrioventricular groove and the aortic root."""
    analysis = real_analysis("lidc_idri_0001").analysis
    cor = analysis.measures["coronary_agatston"]
    assert cor.value is not None and cor.value < 150.0, cor.note
