"""Phantom-cohort validation: metrics are computed right, and ``ctnode evaluate`` runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ctnode.settings import AnalyzerSettings
from inference.analyzer.evaluation import CaseResult, auc, evaluate_cohort, summarise
from inference.findings import FINDING_KEYS

pytest.importorskip("phantom")


def test_auc_counts_ties_half() -> None:
    assert auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert auc([0.1], [0.9]) == 0.0
    assert auc([0.5], [0.5]) == 0.5
    assert auc([], [0.1]) is None


def _case(truth: str, p: float | None) -> CaseResult:
    truths = {k: "not_modelled" for k in FINDING_KEYS}
    truths["emphysema"] = truth
    probs: dict[str, float | None] = {k: None for k in FINDING_KEYS}
    probs["emphysema"] = p
    return CaseResult(0, (), truths, probs, {"laa950_abs": (10.0, 12.0)}, 1.0)


def test_summary_sensitivity_specificity_and_errors() -> None:
    cases = [_case("present", 0.9), _case("present", 0.4), _case("absent", 0.1),
             _case("absent", 0.6), _case("absent", None)]
    report = summarise(cases, 0.5)
    (emph,) = [f for f in report.findings if f.key == "emphysema"]
    assert (emph.n_pos, emph.n_neg, emph.n_not_assessed) == (2, 3, 1)
    assert emph.sensitivity == 0.5 and emph.specificity == 0.5
    assert emph.auc == pytest.approx(0.75)
    (laa,) = [m for m in report.measurements if m.name == "laa950_abs"]
    assert laa.mean_error == 2.0 and laa.n == 5
    assert "| emphysema | 2 | 3 | 1 | 50% | 50% | 0.75 |" in report.table()


def test_small_cohort_end_to_end() -> None:
    report = evaluate_cohort(3, seed=7, settings=AnalyzerSettings(), threshold=0.5, p_each=0.4)
    assert len(report.cases) == 3 and not [c for c in report.cases if c.error]
    keys = {f.key for f in report.findings}
    assert {"emphysema", "pleural_effusion", "lung_nodule"} <= keys
    for f in report.findings:
        assert f.n_pos + f.n_neg == 3
    lung = {m.name: m for m in report.measurements}["lung_volume_pct"]
    assert lung.mean_abs_error < 10.0
    assert json.loads(json.dumps(report.to_json()))["n_cases"] == 3


def test_ctnode_evaluate_command(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ctnode.cli import app

    out = tmp_path / "eval.json"
    result = CliRunner().invoke(app, ["evaluate", "--cases", "2", "--seed", "3",
                                      "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "| finding | pos | neg |" in result.output
    data = json.loads(out.read_text())
    assert data["n_cases"] == 2 and data["findings"]
