"""Stackers: merging model outputs, the max rule, and a trained LightGBM booster."""

from __future__ import annotations

import math
from pathlib import Path

import lightgbm
import numpy as np
import pytest

from inference.findings import FINDING_KEYS
from inference.stacker import (
    LightGBMStacker,
    MaxFindingStacker,
    feature_vector,
    merge_findings,
)
from inference.types import FindingResult, Measurement, ModelOutput, ModelStatus


def _output(name: str, probs: dict[str, float | None], features: dict[str, float] | None = None
            ) -> ModelOutput:
    status = ModelStatus(name, "1", True, tuple(probs))
    findings = tuple(
        FindingResult(k, p, (Measurement(f"{k} size", 1.0, "mm"),) if p is not None else (),
                      note="" if p is not None else "not assessed: test")
        for k, p in probs.items()
    )
    return ModelOutput(status, findings, features or {})


def test_merge_means_assessed_and_keeps_unassessed_as_none() -> None:
    merged = merge_findings([
        _output("a", {"emphysema": 0.2, "lung_nodule": None}),
        _output("b", {"emphysema": 0.6}),
    ])
    assert tuple(f.key for f in merged) == FINDING_KEYS
    by_key = {f.key: f for f in merged}
    assert by_key["emphysema"].probability == pytest.approx(0.4)
    assert len(by_key["emphysema"].measurements) == 2
    assert by_key["lung_nodule"].probability is None
    assert "not assessed" in by_key["lung_nodule"].note
    assert by_key["pneumothorax"].probability is None


def test_max_stacker_takes_the_largest_finding() -> None:
    stacked = MaxFindingStacker().combine([_output("a", {"emphysema": 0.3, "pneumothorax": 0.9})])
    assert stacked.probability == pytest.approx(0.9)
    with pytest.raises(ValueError):
        MaxFindingStacker().combine([_output("a", {"emphysema": None})])


def test_feature_vector_marks_missing_as_nan() -> None:
    out = _output("a", {"emphysema": 0.3}, {"laa950": 7.5})
    x = feature_vector([out], ["a.p.emphysema", "a.f.laa950", "b.p.emphysema"])
    assert x[0] == pytest.approx(0.3) and x[1] == pytest.approx(7.5) and math.isnan(x[2])


def test_lightgbm_stacker_learns_and_loads(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 400
    p = rng.uniform(0, 1, n)
    f = rng.normal(0, 1, n)
    y = (p > 0.5).astype(int)
    names = ["a.p.emphysema", "a.f.noise"]
    booster = lightgbm.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 4, "min_data_in_leaf": 5},
        lightgbm.Dataset(np.c_[p, f], label=y, feature_name=names),
        num_boost_round=30,
    )
    path = tmp_path / "stacker.txt"
    booster.save_model(str(path))
    stacker = LightGBMStacker(path)
    assert stacker.feature_names == tuple(names)
    high = stacker.combine([_output("a", {"emphysema": 0.95}, {"noise": 0.0})])
    low = stacker.combine([_output("a", {"emphysema": 0.05}, {"noise": 0.0})])
    assert high.probability > 0.8 > 0.2 > low.probability
    missing = stacker.combine([_output("b", {"emphysema": 0.9})])  # model a absent: NaN path
    assert 0.0 <= missing.probability <= 1.0


def test_trained_stacker_file_carries_its_threshold_and_handles_missing_models(
        tmp_path: Path) -> None:
    """What ``ctnode train`` writes: booster + threshold; absent models enter as NaN."""
    import json

    from inference.stacker import STACKER_FORMAT

    rng = np.random.default_rng(1)
    n = 300
    a, b = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    y = ((a + b) > 1.0).astype(int)
    names = ["a.p.emphysema", "b.p.pleural_effusion"]
    booster = lightgbm.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 4, "min_data_in_leaf": 5},
        lightgbm.Dataset(np.c_[a, b], label=y, feature_name=names), num_boost_round=30)
    path = tmp_path / "stacker.json"
    path.write_text(json.dumps({"format": STACKER_FORMAT, "booster": booster.model_to_string(),
                                "threshold": 0.3, "version": "v1"}))
    stacker = LightGBMStacker(path)
    both = stacker.combine([_output("a", {"emphysema": 0.9}),
                            _output("b", {"pleural_effusion": 0.9})])
    assert both.threshold == 0.3 and both.probability > 0.8
    only_a = stacker.combine([_output("a", {"emphysema": 0.9})])  # model b did not run
    assert 0.0 <= only_a.probability <= 1.0 and only_a.threshold == 0.3
    by_key = {f.key: f for f in only_a.findings}
    assert by_key["pleural_effusion"].probability is None
    assert by_key["emphysema"].probability == pytest.approx(0.9)
    bad = tmp_path / "other.json"
    bad.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not a ctnode stacker"):
        LightGBMStacker(bad)
