"""``ctnode evaluate --features CACHE --labels labels.csv``: the installed ensemble, cached.

What the node would answer for each cached study is rebuilt without running a
model again: the installed heads (checked, from the weights directory) are
applied to the cached raw outputs and the installed stacker combines them,
exactly as ``Ensemble.finish`` does. Then per labelled finding, and for
``pathology``:

- ROC AUC with a stratified bootstrap 95 % interval (``inference.metrics``);
- sensitivity and specificity (Wilson 95 % intervals) at the threshold the node
  uses: the head's stored threshold where a head scores the finding, else
  ``inference.finding_threshold``; for ``pathology`` the stacker's stored
  threshold, else ``inference.decision_threshold``;
- a calibration plot (PNG): observed frequency against predicted probability
  in quantile bins, with the count of studies per bin.

Run it on studies the heads were not trained on; on the training studies the
numbers are optimistic (the model card's out-of-fold numbers are the honest ones).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ctnode.settings import Settings
from inference.ensemble import load_heads, load_stacker
from inference.findings import FINDING_KEYS, FINDINGS
from inference.models.heads import apply_heads
from inference.stacker import StackedPrediction
from inference.training.card import metrics_table
from inference.training.dataset import load_dataset
from inference.training.fit import TargetMetrics, score_at
from inference.training.labels import PATHOLOGY

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class EvaluationReport:
    """Metrics per target, what was not assessed, and where the plots are."""

    n_studies: int
    stacker: str
    heads: dict[str, str]  # model -> head-set version
    metrics: list[TargetMetrics] = field(default_factory=list)
    not_assessed: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    plots: dict[str, Path] = field(default_factory=dict)

    def table(self) -> str:
        lines = [f"{self.n_studies} labelled studies; stacker {self.stacker}; heads "
                 + (", ".join(f"{m} {v}" for m, v in self.heads.items()) or "none") + "\n",
                 metrics_table(self.metrics), ""]
        missed = [f"{k} ({n})" for k, n in self.not_assessed.items() if n]
        if missed:
            lines.append("not assessed on some labelled studies (count): " + ", ".join(missed))
        lines += self.skipped
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"n_studies": self.n_studies, "stacker": self.stacker, "heads": self.heads,
                "metrics": [m.to_json() for m in self.metrics],
                "not_assessed": self.not_assessed, "skipped": self.skipped,
                "calibration_plots": {k: p.name for k, p in self.plots.items()}}


def calibration_plot(y: np.ndarray, p: np.ndarray, title: str, path: Path) -> Path:
    """Reliability diagram (quantile bins) with the number of studies per bin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve

    n_bins = int(max(2, min(10, len(y) // 5)))
    observed, predicted = calibration_curve(y, p, n_bins=n_bins, strategy="quantile")
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5, 6), height_ratios=(3, 1), sharex=True)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    ax.plot(predicted, observed, "o-", color="tab:blue", label="this model")
    ax.set_ylabel("observed frequency")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    hist.hist([p[y == 1], p[y == 0]], bins=10, range=(0, 1), stacked=True,
              color=["tab:red", "tab:green"], label=["positive", "negative"])
    hist.set_xlabel("predicted probability")
    hist.set_ylabel("studies")
    hist.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def evaluate_features(features_dir: Path, labels_csv: Path, out_dir: Path,
                      settings: Settings, *, n_boot: int = 1000, seed: int = 0
                      ) -> EvaluationReport:
    """Evaluate the installed heads and stacker on cached outputs (see module doc)."""
    ds = load_dataset(features_dir, labels_csv)
    heads = load_heads(settings, {m: i.feature_version for m, i in ds.models.items()})
    stacker = load_stacker(settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = EvaluationReport(len(ds.studies), stacker.name,
                              {m: h.version for m, h in heads.items()})
    stacked: list[StackedPrediction | None] = []
    for study in ds.studies:
        outputs = [apply_heads(o, heads[m]) if m in heads else o
                   for m, o in ds.outputs[study].items()]
        try:
            stacked.append(stacker.combine(outputs))
        except ValueError:  # no model assessed any finding on this study
            stacked.append(None)
    head_thresholds = {h.finding: h.threshold for hs in heads.values() for h in hs.heads}
    # all-negative targets say only "no false positive"; with positives alone the
    # sensitivity is still measured (the AUC is not)
    no_pos = [t for t in ds.labels.targets if ds.labels.counts(t, ds.studies)[0] == 0]
    if no_pos:
        report.skipped.append(f"{len(no_pos)} target(s) without a positive study in the labels "
                              f"(not reported): {', '.join(no_pos)}")
    for target in (t for t in ds.labels.targets if t not in no_pos):
        y_all = ds.target(target)
        if target == PATHOLOGY:
            p_all = [math.nan if s is None else s.probability for s in stacked]
            threshold = next((s.threshold for s in stacked if s is not None
                              and s.threshold is not None), settings.inference.decision_threshold)
        else:
            p_all = [math.nan if s is None else _finding_p(s, target) for s in stacked]
            threshold = head_thresholds.get(target, settings.inference.finding_threshold)
        p_arr = np.array(p_all, dtype=float)
        labelled = ~np.isnan(y_all)
        report.not_assessed[target] = int((labelled & np.isnan(p_arr)).sum())
        keep = labelled & ~np.isnan(p_arr)
        y, p = y_all[keep].astype(int), p_arr[keep]
        if y.size == 0:
            report.skipped.append(f"{target}: no labelled study is assessed")
            continue
        report.metrics.append(score_at(target, y, p, threshold, n_boot=n_boot, seed=seed))
        if y.min() != y.max():
            name = FINDINGS[target].display_name if target in FINDING_KEYS else "any pathology"
            report.plots[target] = calibration_plot(
                y, p, f"{name}: calibration on {len(y)} studies", out_dir /
                f"calibration_{target}.png")
        else:
            report.skipped.append(f"{target}: only one class among the assessed studies "
                                  "(no AUC, no calibration plot)")
    (out_dir / "evaluation.json").write_text(json.dumps(report.to_json(), indent=2) + "\n",
                                             encoding="utf-8")
    (out_dir / "evaluation.md").write_text(report.table() + "\n", encoding="utf-8")
    return report


def _finding_p(stacked: StackedPrediction, key: str) -> float:
    for f in stacked.findings:
        if f.key == key:
            return math.nan if f.probability is None else float(f.probability)
    return math.nan
