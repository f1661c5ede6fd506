"""Heart, aorta, calcium and spine on generated phantoms."""

from __future__ import annotations

import pytest

from inference.models.chest_quant import ChestQuantModel
from tests.inference.analyzer_synth import phantom_case

phantom = pytest.importorskip("phantom")


def _run(lesions: tuple, seed: int, **spec_kw: object):  # type: ignore[no-untyped-def]
    volume, truth = phantom_case(lesions, seed=seed, **spec_kw)
    out = ChestQuantModel().predict(volume)
    p = {f.key: f.probability for f in out.findings}
    notes = {f.key: f.note for f in out.findings}
    features = dict(out.features)
    return p, features, truth, notes


@pytest.fixture(scope="module")
def diseased():  # type: ignore[no-untyped-def]
    return _run((phantom.Cardiomegaly(0.62), phantom.CoronaryCalcification(),
                 phantom.DilatedAorta(50.0), phantom.LowBoneDensity(70.0)), seed=1)


@pytest.fixture(scope="module")
def normal():  # type: ignore[no-untyped-def]
    return _run((), seed=1)


def test_cardiothoracic_ratio(diseased, normal) -> None:  # type: ignore[no-untyped-def]
    for _p, f, truth, _ in (diseased, normal):
        # The analyzer's CTR is axial, both widths on one slice (truth ``ctr_axial``).
        assert f["cardiothoracic_ratio"] == pytest.approx(truth["measurements"]["ctr_axial"],
                                                          abs=0.05)
    assert diseased[0]["cardiomegaly"] > 0.5 > normal[0]["cardiomegaly"]


def test_coronary_calcium(diseased, normal) -> None:  # type: ignore[no-untyped-def]
    assert diseased[1]["coronary_agatston"] > 10
    assert diseased[0]["coronary_artery_wall_calcification"] > 0.5
    assert normal[0]["coronary_artery_wall_calcification"] < 0.5


def test_ascending_aorta_diameter(diseased, normal) -> None:  # type: ignore[no-untyped-def]
    p, f, truth, _ = diseased
    assert f["ascending_aorta_diameter"] == pytest.approx(
        truth["measurements"]["aorta_ascending_diameter_mm"], abs=7.0)
    assert p["thoracic_aortic_dilatation"] > 0.5 > normal[0]["thoracic_aortic_dilatation"]


def test_vertebral_trabecular_attenuation(diseased, normal) -> None:  # type: ignore[no-untyped-def]
    for _p, f, truth, _ in (diseased, normal):
        assert f["vertebral_trabecular_hu"] == pytest.approx(
            truth["measurements"]["vertebral_trabecular_hu"], abs=15.0)
    assert diseased[0]["low_vertebral_bone_density"] > 0.5 > normal[0]["low_vertebral_bone_density"]


def test_pericardial_effusion_not_assessed_without_contrast(normal) -> None:  # type: ignore[no-untyped-def]
    p, f, _, notes = normal
    assert p["pericardial_effusion"] is None
    assert notes["pericardial_effusion"].startswith("not assessed")
    assert f["contrast_enhanced"] == 0.0


def test_enhanced_study_scores_calcium_above_the_blood_pool() -> None:
    """Issue 13: under contrast the threshold follows the measured blood pool, so the
    calcium is scored (it was skipped before) and the iodinated blood is not."""
    p, f, _, notes = _run((phantom.CoronaryCalcification(),), seed=2, contrast=True)
    assert f["contrast_enhanced"] == 1.0
    assert p["coronary_artery_wall_calcification"] > 0.5
    assert "blood pool" in notes["coronary_artery_wall_calcification"]
    p0, f0, _, _ = _run((), seed=2, contrast=True)
    assert f0["coronary_agatston"] == 0.0
    assert p0["coronary_artery_wall_calcification"] < 0.5
