"""Binary-classification metrics shared by every evaluation (phantom, real cases, heads).

Small and dependency-light (numpy + scipy) so that the product and the training
tools use the same definitions:

- ``roc_auc``: the Mann-Whitney form of the ROC AUC (ties count one half), the
  same number as ``sklearn.metrics.roc_auc_score``.
- ``bootstrap_auc_ci``: a percentile bootstrap stratified by class, as pROC's
  ``ci.auc(method="bootstrap", stratified=TRUE)`` (Robin et al., BMC
  Bioinformatics 12:77, 2011): resampling positives and negatives separately
  keeps every replicate computable on small labelled sets.
- ``sens_spec_at``: sensitivity and specificity of the rule ``p >= t``.
- ``wilson_ci``: the Wilson score interval of a proportion (Brown, Cai and
  DasGupta, Stat. Sci. 16:101, 2001), which behaves at 0/n and n/n where the
  normal interval does not.
- ``threshold_for_sensitivity``: the largest threshold that still reaches a
  target sensitivity, for operating points chosen on validation folds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import norm, rankdata

ArrayLike = Sequence[float] | np.ndarray


def _xy(y: ArrayLike, p: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    ya = np.asarray(y, dtype=float).ravel()
    pa = np.asarray(p, dtype=float).ravel()
    if ya.shape != pa.shape:
        raise ValueError(f"labels ({ya.size}) and scores ({pa.size}) differ in length")
    if not np.all((ya == 0) | (ya == 1)):
        raise ValueError("labels must be 0 or 1")
    if not np.all(np.isfinite(pa)):
        raise ValueError("scores must be finite numbers")
    return ya.astype(int), pa


def _auc_sorted(y: np.ndarray, p: np.ndarray) -> float:
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(p)  # average ranks: ties count one half
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_auc(y: ArrayLike, p: ArrayLike) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    ya, pa = _xy(y, p)
    return _auc_sorted(ya, pa)


def bootstrap_auc_ci(
    y: ArrayLike, p: ArrayLike, n: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """(AUC, lower, upper): stratified percentile bootstrap interval (see module doc).

    All three are NaN when one class is absent. Deterministic for a given seed.
    """
    ya, pa = _xy(y, p)
    auc = _auc_sorted(ya, pa)
    if math.isnan(auc):
        return (math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    pos, neg = pa[ya == 1], pa[ya == 0]
    labels = np.r_[np.ones(pos.size, int), np.zeros(neg.size, int)]
    reps = np.empty(n)
    for i in range(n):
        sample = np.r_[rng.choice(pos, pos.size), rng.choice(neg, neg.size)]
        reps[i] = _auc_sorted(labels, sample)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(reps, [alpha, 1.0 - alpha])
    return (auc, float(lo), float(hi))


def sens_spec_at(y: ArrayLike, p: ArrayLike, t: float) -> tuple[float, float]:
    """(sensitivity, specificity) of calling ``p >= t`` positive; NaN for an absent class."""
    ya, pa = _xy(y, p)
    called = pa >= t
    n_pos = int(ya.sum())
    n_neg = ya.size - n_pos
    sens = float(called[ya == 1].sum() / n_pos) if n_pos else math.nan
    spec = float((~called[ya == 0]).sum() / n_neg) if n_neg else math.nan
    return (sens, spec)


def wilson_ci(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of k successes in n trials; (NaN, NaN) when n is 0."""
    if n <= 0:
        return (math.nan, math.nan)
    z = float(norm.ppf(0.5 + level / 2.0))
    phat = k / n
    denom = 1.0 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def threshold_for_sensitivity(y: ArrayLike, p: ArrayLike, target: float) -> float:
    """The largest threshold t with sensitivity(p >= t) >= target.

    Taking the largest such t keeps specificity as high as the target allows.
    Raises ValueError when there is no positive case to aim at.
    """
    if not 0.0 < target <= 1.0:
        raise ValueError("target sensitivity must be in (0, 1]")
    ya, pa = _xy(y, p)
    pos = np.sort(pa[ya == 1])[::-1]
    if pos.size == 0:
        raise ValueError("no positive case: a threshold for a sensitivity cannot be chosen")
    needed = math.ceil(target * pos.size - 1e-9)  # positives that must score >= t
    return float(pos[max(needed, 1) - 1])
