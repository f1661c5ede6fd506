"""Combining the models' outputs into one probability per finding and one overall.

Two stackers share one interface:

- ``MaxFindingStacker`` (default while no trained stacker is installed): the
  probability that *any* of the 22 findings is present is at least the largest
  single-finding probability, so it uses exactly that lower bound. It adds no
  learned calibration and invents no evidence.
- ``LightGBMStacker``: a LightGBM booster trained on the models' per-finding
  probabilities and raw features (``<model>.<name>``); missing models or
  unassessed findings enter as NaN, which LightGBM routes natively.

Per-finding probabilities are the mean over the models that assessed the
finding; a finding no model assessed stays ``None``.
"""

from __future__ import annotations

import abc
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.findings import FINDING_KEYS
from inference.types import Evidence, FindingResult, Measurement, ModelOutput

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StackedPrediction:
    """The stacker's answer: one overall probability and all 22 findings."""

    probability: float
    findings: tuple[FindingResult, ...]
    stacker: str
    # issue 16: a trained stacker's decision threshold (chosen on validation folds for
    # the target sensitivity); None: the node's inference.decision_threshold applies
    threshold: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("StackedPrediction.probability must be in [0, 1]")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError("StackedPrediction.threshold must be in [0, 1]")
        if tuple(f.key for f in self.findings) != FINDING_KEYS:
            raise ValueError("StackedPrediction.findings must hold the 22 findings in order")


def merge_findings(outputs: Sequence[ModelOutput]) -> tuple[FindingResult, ...]:
    """All 22 findings, each the mean of the models that assessed it."""
    merged: list[FindingResult] = []
    for key in FINDING_KEYS:
        scored = [f for o in outputs for f in o.findings if f.key == key]
        assessed = [f for f in scored if f.probability is not None]
        measurements: tuple[Measurement, ...] = tuple(m for f in scored for m in f.measurements)
        evidence: tuple[Evidence, ...] = tuple(e for f in assessed for e in f.evidence)
        if assessed:
            probability: float | None = float(
                np.mean([f.probability for f in assessed if f.probability is not None])
            )
            note = "; ".join(f.note for f in assessed if f.note)
        else:
            probability = None
            note = "; ".join(f.note for f in scored if f.note) or (
                "not assessed by any installed model"
            )
        merged.append(FindingResult(key, probability, measurements, evidence, note))
    return tuple(merged)


class Stacker(abc.ABC):
    """Turns model outputs into a ``StackedPrediction``."""

    name: str

    @abc.abstractmethod
    def combine(self, outputs: Sequence[ModelOutput]) -> StackedPrediction:
        """Combine. ``outputs`` holds only models that ran (weights installed)."""


class MaxFindingStacker(Stacker):
    """Overall probability = the largest assessed finding probability (see module doc)."""

    name = "max_finding"

    def combine(self, outputs: Sequence[ModelOutput]) -> StackedPrediction:
        findings = merge_findings(outputs)
        assessed = [f.probability for f in findings if f.probability is not None]
        if not assessed:
            raise ValueError("no model assessed any finding: nothing to combine")
        return StackedPrediction(float(max(assessed)), findings, self.name)


def feature_vector(outputs: Sequence[ModelOutput], names: Sequence[str]) -> np.ndarray:
    """Values of the named stacker features, NaN where a model or finding is missing.

    Names are ``<model>.p.<finding_key>`` for probabilities and
    ``<model>.f.<feature>`` for raw features.
    """
    values: dict[str, float] = {}
    for out in outputs:
        for f in out.findings:
            if f.probability is not None:
                values[f"{out.model.name}.p.{f.key}"] = f.probability
        for k, v in out.features.items():
            values[f"{out.model.name}.f.{k}"] = float(v)
    return np.array([values.get(n, math.nan) for n in names], dtype=float)


STACKER_FORMAT = "ctnode-stacker/1"


class LightGBMStacker(Stacker):
    """A trained LightGBM booster over the models' outputs (see module doc).

    ``model_file`` is a LightGBM text model, or (issue 16, what ``ctnode train``
    writes) a JSON file ``{"format": "ctnode-stacker/1", "booster": <text>,
    "threshold": t, "version": ...}`` that also carries the decision threshold.
    """

    name = "lightgbm"

    def __init__(self, model_file: Path) -> None:
        import lightgbm

        self.threshold: float | None = None
        self.version = ""
        if model_file.suffix == ".json":
            data = json.loads(model_file.read_text(encoding="utf-8"))
            if data.get("format") != STACKER_FORMAT:
                raise ValueError(f"{model_file.name} is not a ctnode stacker")
            self._booster = lightgbm.Booster(model_str=data["booster"])
            self.threshold = float(data["threshold"])
            self.version = str(data.get("version", ""))
        else:
            self._booster = lightgbm.Booster(model_file=str(model_file))
        self.feature_names: tuple[str, ...] = tuple(self._booster.feature_name())
        logger.info("loaded LightGBM stacker with %d features", len(self.feature_names))

    def combine(self, outputs: Sequence[ModelOutput]) -> StackedPrediction:
        x = feature_vector(outputs, self.feature_names)[None, :]
        probability = float(np.clip(self._booster.predict(x)[0], 0.0, 1.0))
        return StackedPrediction(probability, merge_findings(outputs), self.name,
                                 self.threshold)
