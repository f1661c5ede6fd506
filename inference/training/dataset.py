"""The training/evaluation table: cached model outputs joined with the labels."""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inference.training.cache import CachedOutput, FeatureCache
from inference.training.labels import Labels, read_labels
from inference.types import ModelOutput

logger = logging.getLogger(__name__)

MAX_STACKER_SCALARS = 64  # a model with more scalar features feeds the stacker through heads


@dataclass(slots=True)
class ModelInfo:
    """One input model as the cache knows it."""

    name: str
    version: str
    feature_version: str
    has_embedding: bool
    feature_names: tuple[str, ...]


@dataclass(slots=True)
class Dataset:
    """Labelled studies with every cached model output (one feature version per model)."""

    studies: list[str]
    outputs: dict[str, dict[str, ModelOutput]]  # study -> model -> raw output
    models: dict[str, ModelInfo]
    labels: Labels
    features_dir: Path
    labels_file: Path
    unlabelled: int = 0
    notes: list[str] = field(default_factory=list)

    def head_inputs(self, model: str) -> tuple[np.ndarray, list[int]]:
        """(X, row indices into ``studies``) of the studies where ``model`` has an output."""
        info = self.models[model]
        rows, xs = [], []
        for i, study in enumerate(self.studies):
            out = self.outputs[study].get(model)
            if out is None:
                continue
            if info.has_embedding:
                if out.embedding is None:
                    continue
                xs.append(np.asarray(out.embedding, dtype=float))
            else:
                xs.append(np.array([out.features.get(n, math.nan) for n in info.feature_names]))
            rows.append(i)
        dim = 0 if not xs else xs[0].size
        return (np.vstack(xs) if xs else np.zeros((0, dim))), rows

    def target(self, key: str, rows: list[int] | None = None) -> np.ndarray:
        """Labels of ``key`` for ``rows`` (default all) as floats, NaN when unknown."""
        idx = range(len(self.studies)) if rows is None else rows
        vals = [self.labels.values[self.studies[i]].get(key) for i in idx]
        return np.array([math.nan if v is None else float(v) for v in vals])


def load_dataset(features_dir: Path, labels_file: Path) -> Dataset:
    """Join the cache with the labels; each model at its most common feature version."""
    labels = read_labels(labels_file)
    cache = FeatureCache(features_dir)
    entries = list(cache.entries())
    if not entries:
        raise ValueError(f"no cached model output under {features_dir} (run `ctnode features` "
                         "first)")
    notes: list[str] = []
    chosen: dict[str, str] = {}
    for model, counts in _by_model(entries).items():
        fv, _ = counts.most_common(1)[0]
        chosen[model] = fv
        if len(counts) > 1:
            notes.append(f"{model}: using feature version {fv}; "
                         f"{sum(counts.values()) - counts[fv]} output(s) of other versions ignored")
    outputs: dict[str, dict[str, ModelOutput]] = {}
    models: dict[str, ModelInfo] = {}
    names: dict[str, set[str]] = {}
    for e in entries:
        if chosen[e.model] != e.feature_version:
            continue
        outputs.setdefault(e.study, {})[e.model] = e.output
        names.setdefault(e.model, set()).update(e.output.features)
        if e.model not in models:
            models[e.model] = ModelInfo(e.model, e.version, e.feature_version,
                                        e.output.embedding is not None, ())
    for m, info in models.items():
        info.feature_names = tuple(sorted(names.get(m, ())))
    studies = sorted(s for s in outputs if s in labels.values)
    unlabelled = sum(s not in labels.values for s in outputs)
    missing = sum(s not in outputs for s in labels.values)
    if missing:
        notes.append(f"{missing} labelled stud(ies) have no cached output")
    if not studies:
        raise ValueError("no cached study has labels: check that labels.csv's study_uid "
                         "column holds the Study Instance UIDs (NIfTI: file names)")
    return Dataset(studies, {s: outputs[s] for s in studies}, models, labels, features_dir,
                   labels_file, unlabelled, notes)


def _by_model(entries: list[CachedOutput]) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = {}
    for e in entries:
        out.setdefault(e.model, Counter())[e.feature_version] += 1
    return out
