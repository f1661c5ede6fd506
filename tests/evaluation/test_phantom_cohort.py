"""Accuracy floors on a small gap-free phantom cohort (the first 8 cases of seed 0).

The floor of each finding is the number of cases it got right when measured
(intention to diagnose: an unassessed or failed case is wrong), less one: a
change that costs any finding two cases fails. Regenerate the measured counts
with ``ctnode evaluate --cases 8 --seed 0`` after a deliberate change and say
why in the commit. About 1-2 minutes on 2 cores.
"""

from __future__ import annotations

import pytest

from ctnode.settings import AnalyzerSettings
from evaluation.phantom_eval import CohortReport, evaluate_cohort

pytest.importorskip("phantom")

# finding -> cases right out of 8 when measured (sensitivity x pos + specificity x neg).
# Issue 12's third pass (heart tracking, L1 from the ribs): lung_mass 5 -> 8, cardiomegaly
# 6 -> 8, low bone density 4 -> 7, pericardial 3 -> 4, arterial wall 5 -> 3, coronary 7 -> 6.
# Last regenerated after issue 12's fourth pass: arterial wall 3 -> 4 (the streak zone
# around dense contrast); cardiomegaly 8 -> 6 although the ratio is measured better (mean
# absolute CTR error 0.064 -> 0.051 on these 8 cases): on noisy arterial-phase cases the
# heart outline no longer swells or shrinks with the smoothing (heart._soft_band) and the
# spine's front is a running median (heart._spine_front), and two normal hearts (truth
# CTR 0.45-0.47) now read 0.50-0.57, just over the 0.5 limit, where they read 0.22-0.46.
MEASURED_RIGHT = {
    "lung_nodule": 5, "lung_mass": 8, "lung_opacity": 5, "consolidation": 5,
    "pleural_effusion": 8, "pneumothorax": 7, "pericardial_effusion": 4, "emphysema": 2,
    "coronary_artery_wall_calcification": 6, "arterial_wall_calcification": 4,
    "medical_material": 6, "low_vertebral_bone_density": 7, "cardiomegaly": 6,
    "thoracic_aortic_dilatation": 7,
}


@pytest.fixture(scope="module")
def report() -> CohortReport:
    return evaluate_cohort(8, seed=0, settings=AnalyzerSettings(), threshold=0.5, n_boot=200)


def _right(f: object) -> int:
    sens = 0.0 if f.n_pos == 0 else f.sensitivity  # type: ignore[attr-defined]
    spec = 0.0 if f.n_neg == 0 else f.specificity  # type: ignore[attr-defined]
    return round(sens * f.n_pos + spec * f.n_neg)  # type: ignore[attr-defined]


def test_no_case_fails(report: CohortReport) -> None:
    assert [c.error for c in report.cases if c.error] == []


@pytest.mark.parametrize("key", sorted(MEASURED_RIGHT))
def test_finding_floor(report: CohortReport, key: str) -> None:
    (f,) = [f for f in report.findings if f.key == key]
    assert f.n_pos + f.n_neg == 8
    assert _right(f) >= MEASURED_RIGHT[key] - 1, (key, _right(f))


def test_lung_volume_is_measured(report: CohortReport) -> None:
    lung = {m.name: m for m in report.measurements}["lung_volume_pct"]
    assert lung.mean_abs_error < 5.0
