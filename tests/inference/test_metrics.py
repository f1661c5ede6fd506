"""Shared metrics: AUC as scikit-learn computes it, bootstrap interval, operating points."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from inference.metrics import (
    bootstrap_auc_ci,
    roc_auc,
    sens_spec_at,
    threshold_for_sensitivity,
    wilson_ci,
)


def test_auc_matches_scikit_learn_with_ties() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.round(rng.uniform(0, 1, 200) + 0.3 * y, 1)  # rounded: many ties
    assert roc_auc(y, p) == pytest.approx(roc_auc_score(y, p))
    assert math.isnan(roc_auc([1, 1], [0.2, 0.3]))


def test_bootstrap_interval_brackets_the_auc_and_is_reproducible() -> None:
    rng = np.random.default_rng(1)
    y = np.r_[np.ones(30), np.zeros(30)]
    p = rng.normal(y, 1.0)
    auc, lo, hi = bootstrap_auc_ci(y, p, n=500, seed=3)
    assert lo < auc < hi and 0 <= lo and hi <= 1
    assert bootstrap_auc_ci(y, p, n=500, seed=3) == (auc, lo, hi)
    # a larger sample gives a narrower interval
    y2, p2 = np.tile(y, 8), rng.normal(np.tile(y, 8), 1.0)
    _, lo2, hi2 = bootstrap_auc_ci(y2, p2, n=500, seed=3)
    assert hi2 - lo2 < hi - lo


def test_sensitivity_specificity_and_threshold_for_a_target() -> None:
    y = [1, 1, 1, 1, 0, 0, 0, 0]
    p = [0.9, 0.8, 0.6, 0.3, 0.7, 0.2, 0.1, 0.05]
    assert sens_spec_at(y, p, 0.5) == (0.75, 0.75)
    t = threshold_for_sensitivity(y, p, 0.75)
    assert t == pytest.approx(0.6)  # the largest threshold keeping 3 of 4 positives
    assert sens_spec_at(y, p, t)[0] >= 0.75
    assert threshold_for_sensitivity(y, p, 1.0) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="no positive"):
        threshold_for_sensitivity([0, 0], [0.1, 0.2], 0.9)


def test_wilson_interval_known_values() -> None:
    lo, hi = wilson_ci(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-3)  # Brown et al. 2001
    lo, hi = wilson_ci(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-3) and hi == pytest.approx(0.7634, abs=1e-3)
    assert all(math.isnan(v) for v in wilson_ci(0, 0))
