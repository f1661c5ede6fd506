"""Phantom-cohort scoring: intention to diagnose, intervals, and ``ctnode evaluate`` runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation.phantom_eval import CaseResult, finding_metrics, summarise
from phantom.cohort import COHORT_FINDINGS, REFERENCE_RULES, reference, sample_cohort


def _case(i: int, truth: str, p: float | None, error: str = "") -> CaseResult:
    return CaseResult(i, i, "soft", "", {"emphysema": truth}, {"emphysema": p},
                      {"laa950_abs": (10.0, 12.0)}, 1.0, error)


def test_not_assessed_and_failed_cases_count_as_wrong() -> None:
    cases = [_case(0, "present", 0.9), _case(1, "present", 0.4), _case(2, "present", None),
             _case(3, "absent", 0.1), _case(4, "absent", 0.6), _case(5, "absent", None),
             _case(6, "absent", None, error="not_chest: no lungs")]
    m = finding_metrics("emphysema", cases, 0.5, n_boot=200)
    assert (m.n_pos, m.n_neg, m.n_not_assessed, m.n_failed) == (3, 4, 2, 1)
    assert m.sensitivity == pytest.approx(1 / 3)  # the unassessed positive is a miss
    assert m.specificity == pytest.approx(1 / 4)  # unassessed and failed negatives are errors
    # Ranked worst: unassessed positives below every score, negatives above.
    assert m.auc[0] == pytest.approx(3 / 12)
    assert m.auc_assessed[0] == pytest.approx(0.75)
    assert m.auc[1] <= m.auc[0] <= m.auc[2]
    assert 0.0 < m.sensitivity_ci[0] < m.sensitivity < m.sensitivity_ci[1] < 1.0


def test_summary_table_has_intervals() -> None:
    cases = [_case(0, "present", 0.9), _case(1, "absent", 0.2)]
    report = summarise(cases, 0.5, n_boot=100)
    (laa,) = [m for m in report.measurements if m.name == "laa950_abs"]
    assert laa.mean_error == 2.0 and laa.n == 2
    assert "| emphysema | 1 | 1 | 0 | 0 | 100% (21-100) | 100% (21-100) | 1.00" in report.table()
    assert json.loads(json.dumps(report.to_json()))["n_cases"] == 2


def test_cohort_draws_every_finding_on_both_sides_of_its_threshold() -> None:
    cohort = sample_cohort(60, seed=5)
    assert set(REFERENCE_RULES) == set(COHORT_FINDINGS)
    for key in COHORT_FINDINGS:
        drawn = [c.drawn[key] for c in cohort if key in c.drawn]
        assert 10 <= len(drawn) <= 50, key  # inserted in about half the cases
    nod = [c.drawn["lung_nodule"] for c in cohort if "lung_nodule" in c.drawn]
    assert min(nod) < 4.0 < max(nod)  # nodules below and above the 4 mm floor
    mass = [c.drawn["lung_mass"] for c in cohort if "lung_mass" in c.drawn]
    assert min(mass) < 30.0 < max(mass)
    bone = [c.drawn["low_vertebral_bone_density"] for c in cohort
            if "low_vertebral_bone_density" in c.drawn]
    assert min(bone) < 110.0 < max(bone)
    assert {c.kernel for c in cohort} == {"soft", "sharp"}
    assert len({c.spec.kvp for c in cohort}) >= 3
    assert len({str(c.spec.contrast_phase) for c in cohort}) == 3
    assert sample_cohort(3, seed=5)[2].spec == cohort[2].spec  # deterministic prefix


def test_reference_follows_the_stated_rules() -> None:
    truth = {"lesions": [{"type": "nodule", "diameter_mm": 3.5},
                         {"type": "nodule", "diameter_mm": 31.0},
                         {"type": "consolidation"}],
             "findings": {"low_vertebral_bone_density": "absent", "cardiomegaly": "present",
                          "thoracic_aortic_dilatation": "absent"},
             "measurements": {"pericardial_effusion_thickness_mm": 3.0,
                              "coronary_agatston_like": 0.0, "aortic_agatston_like": 4.0}}
    ref = reference(truth)
    assert ref["lung_nodule"] == "absent"  # 3.5 mm is below the 4 mm floor
    assert ref["lung_mass"] == "present"
    assert ref["lung_opacity"] == ref["consolidation"] == "present"
    assert ref["pericardial_effusion"] == "absent"
    assert ref["arterial_wall_calcification"] == "present"
    assert ref["coronary_artery_wall_calcification"] == "absent"
    assert ref["cardiomegaly"] == "present"


def test_ctnode_evaluate_command(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ctnode.cli import app

    out = tmp_path / "eval.json"
    result = CliRunner().invoke(app, ["evaluate", "--cases", "1", "--seed", "3",
                                      "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "| finding | pos | neg | not assessed | failed |" in result.output
    data = json.loads(out.read_text())
    assert data["n_cases"] == 1 and data["findings"]
    bad = CliRunner().invoke(app, ["evaluate", "--cases", str(tmp_path / "nowhere")])
    assert bad.exit_code != 0
    empty = CliRunner().invoke(app, ["evaluate", "--cases", str(tmp_path)])
    assert empty.exit_code == 1 and "no labelled case" in empty.output
