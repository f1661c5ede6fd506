"""Model cards and the manifest of a training run.

Every trained artefact gets a Markdown card beside it (after Mitchell et al.,
"Model Cards for Model Reporting", FAT* 2019: intended use, training data,
metrics with intervals, caveats) and an entry in ``out_dir/manifest.json`` with
its SHA-256, so it is installed through the same checked path as any weights
(``ctnode weights install NAME --manifest out_dir/manifest.json`` or
``ctnode train --install``).
"""

from __future__ import annotations

import json
import platform
import time
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from ctnode import __version__ as ctnode_version
from inference.findings import FINDINGS
from weights import WeightsEntry, sha256_of

if TYPE_CHECKING:
    from inference.training.dataset import Dataset
    from inference.training.fit import Artefact, TargetMetrics, TrainingResult, TrainOptions


def _pkg(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "absent"


def _pct(v: float | None) -> str:
    return "—" if v is None or v != v else f"{100 * v:.1f} %"


def _num(v: float | None) -> str:
    return "—" if v is None or v != v else f"{v:.3f}"


def metrics_table(metrics: list[TargetMetrics]) -> str:
    """The metrics as a Markdown table (cards, ``ctnode train`` and ``evaluate`` output)."""
    lines = ["| target | n (pos/neg) | AUC [95 % CI] | threshold | sensitivity [95 % CI] | "
             "specificity [95 % CI] |", "|---|---|---|---|---|---|"]
    for m in metrics:
        name = FINDINGS[m.target].display_name if m.target in FINDINGS else m.target
        lines.append(
            f"| {name} | {m.n} ({m.n_pos}/{m.n_neg}) | {_num(m.auc)} [{_num(m.auc_lo)}, "
            f"{_num(m.auc_hi)}] | {_num(m.threshold)} | {_pct(m.sensitivity)} "
            f"[{_pct(m.sens_ci[0])}, {_pct(m.sens_ci[1])}] | {_pct(m.specificity)} "
            f"[{_pct(m.spec_ci[0])}, {_pct(m.spec_ci[1])}] |")
    return "\n".join(lines)


def _card(a: Artefact, ds: Dataset, opt: TrainOptions, result: TrainingResult) -> str:
    what = ("per-finding heads on the features of model `" + a.model + "`"
            if a.name != "stacker" else
            "LightGBM stacker over every model's outputs (overall probability of pathology)")
    counts = "\n".join(
        f"| {FINDINGS[t].display_name if t in FINDINGS else t} | {p} | {n} | "
        f"{len(ds.studies) - p - n} |"
        for t in ds.labels.targets for p, n in [ds.labels.counts(t, ds.studies)])
    inputs = "\n".join(f"| {m.name} | {m.version} | {m.feature_version} | "
                       f"{'embedding; ' if m.has_embedding else ''}"
                       f"{len(m.feature_names)} scalar feature(s) |"
                       for m in ds.models.values())
    description = opt.data_description or (
        f"{len(ds.studies)} labelled studies from the feature cache "
        f"`{ds.features_dir.name}`, labels from `{ds.labels_file.name}`.")
    skipped = "\n".join(f"  - {s}" for s in result.skipped) or "  - none"
    notes = "\n".join(f"  - {n}" for n in ds.notes) or "  - none"
    return f"""# Model card: {a.name} {a.version}

{what}. Trained with `ctnode train` on {time.strftime('%Y-%m-%d %H:%M %Z')}.

**Decision support, not a diagnosis.** Trained on one site's labels: before it is
switched on, evaluate it on studies it never saw (`ctnode evaluate --features
--labels`) and read the intervals below, not only the point estimates.

## Training data

{description}

- studies with cached outputs and labels: **n = {len(ds.studies)}**
  ({ds.unlabelled} cached studies without labels were not used)
- data notes:
{notes}

| target | positive | negative | unknown |
|---|---|---|---|
{counts}

## Input models

| model | version | feature version | inputs |
|---|---|---|---|
{inputs}

## Metrics (out-of-fold, {opt.folds}-fold stratified cross-validation, seed {opt.seed})

Each study is scored by a model that never saw it. AUC with a stratified
percentile bootstrap 95 % interval ({opt.bootstrap} resamples); sensitivity and
specificity at the stored threshold with Wilson 95 % intervals. The threshold is
the largest reaching the target sensitivity **{opt.target_sensitivity:.0%}** on the
validation folds.

{metrics_table(a.metrics)}

## Method

- head kind: {opt.head_kind} (logistic: standardise, PCA {opt.pca_dim}, L2 logistic
  regression C = {opt.c}, balanced class weights; lightgbm: 4 leaves, 50 rounds)
- not trained (too few labels):
{skipped}

## Versions

ctnode {ctnode_version}; scikit-learn {_pkg('scikit-learn')}; lightgbm {_pkg('lightgbm')};
numpy {_pkg('numpy')}; torch {_pkg('torch')}; Python {platform.python_version()}.

## Caveats

- Metrics from cross-validation on the training site estimate performance on
  *this* site's population and scanners; they say nothing about another site.
- A cohort of synthetic phantoms only tests the training loop: heads trained on
  phantoms must never be switched on for patients.
"""


def write_cards_and_manifest(ds: Dataset, result: TrainingResult, opt: TrainOptions) -> None:
    """A card per artefact and ``manifest.json`` listing them with their SHA-256."""
    entries = []
    for a in result.artefacts:
        a.card = a.file.rsplit(".", 1)[0] + ".md"
        (result.out_dir / a.card).write_text(_card(a, ds, opt, result), encoding="utf-8")
        a.sha256 = sha256_of(result.out_dir / a.file)
        entry = WeightsEntry(
            name=a.name, version=a.version, file=a.file, source="trained:ctnode train",
            sha256=a.sha256, model=a.model, card=a.card,
            license="site-trained; subject to the licences of its input models",
            input_spec=("the model's features (" + a.model + ")" if a.name != "stacker"
                        else "every model's probabilities and small scalar features"),
            output_spec=", ".join(m.target for m in a.metrics) + " probabilities + threshold")
        entries.append(entry.to_json())
    result.manifest = result.out_dir / "manifest.json"
    result.manifest.write_text(json.dumps({
        "comment": "Artefacts of one `ctnode train` run; install with `ctnode weights install "
                   "NAME --manifest THIS_FILE` (SHA-256 checked).",
        "entries": entries}, indent=2) + "\n", encoding="utf-8")
    report = {"studies": len(ds.studies), "skipped": result.skipped, "notes": ds.notes,
              "artefacts": [{"name": a.name, "version": a.version, "file": a.file,
                             "metrics": [m.to_json() for m in a.metrics]}
                            for a in result.artefacts]}
    (result.out_dir / "training_report.json").write_text(json.dumps(report, indent=2) + "\n",
                                                         encoding="utf-8")
