"""Trained heads: the folded linear map equals the scikit-learn pipeline; apply and store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from inference.models.heads import Head, HeadSet, apply_heads
from inference.training.fit import TrainOptions, _fit_logistic
from inference.types import FindingResult, Measurement, ModelOutput, ModelStatus


def test_folded_logistic_head_equals_the_sklearn_pipeline() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 40)) * rng.uniform(0.1, 5, 40) + rng.normal(size=40)
    y = (x[:, 0] + 0.5 * x[:, 3] + rng.normal(scale=0.5, size=60) > 0).astype(int)
    opt = TrainOptions(pca_dim=8, c=0.1)
    coef, intercept = _fit_logistic(x, y, opt)
    ref = make_pipeline(StandardScaler(), PCA(8, random_state=0),
                        LogisticRegression(C=0.1, class_weight="balanced", max_iter=2000))
    ref.fit(x, y)
    head = Head("emphysema", "logistic", 0.5, coef=coef, intercept=intercept)
    assert np.allclose(head.predict(x), ref.predict_proba(x)[:, 1], atol=1e-6)


def _head_set(dim: int = 3) -> HeadSet:
    return HeadSet("enc", "fv1", "embedding", (), dim,
                   (Head("emphysema", "logistic", 0.4, coef=np.array([1.0, 0.0, 0.0]),
                         intercept=0.0),), "v1")


def test_head_set_round_trip_and_apply(tmp_path: Path) -> None:
    path = tmp_path / "heads.json"
    _head_set().save(path)
    loaded = HeadSet.load(path)
    assert loaded.findings == ("emphysema",) and loaded.version == "v1"
    status = ModelStatus("enc", "1", True, ())
    out = ModelOutput(status, (), embedding=np.array([2.0, 5.0, 5.0], np.float32))
    applied = apply_heads(out, loaded)
    (f,) = applied.findings
    assert f.key == "emphysema"
    assert f.probability == pytest.approx(1 / (1 + np.exp(-2.0)))
    assert "threshold 0.400" in f.note
    # no embedding (or the wrong size): the head does not assess, the output is unchanged
    assert apply_heads(ModelOutput(status, ()), loaded).findings == ()


def test_a_head_replaces_the_models_own_score_and_keeps_its_measurements() -> None:
    own = FindingResult("emphysema", 0.9, (Measurement("LAA-950", 7.0, "%"),))
    out = ModelOutput(ModelStatus("enc", "1", True, ("emphysema",)), (own,),
                      embedding=np.array([-3.0, 0.0, 0.0], np.float32))
    (f,) = apply_heads(out, _head_set()).findings
    assert f.probability == pytest.approx(1 / (1 + np.exp(3.0)))
    assert f.measurements == own.measurements and "replaces" in f.note


def test_bad_head_files_are_refused() -> None:
    with pytest.raises(ValueError, match="format"):
        HeadSet.from_json({"format": "other"})
    with pytest.raises(ValueError, match="coef"):
        HeadSet("enc", "fv", "embedding", (), 4, _head_set().heads, "v")
