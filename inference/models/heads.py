"""Trained per-finding heads on a model's features (issue 16).

A learned encoder (``astra_features``) scores no finding by itself: it returns a
feature vector. A *head set* trained with ``ctnode train`` on a site's labels
turns that vector into finding probabilities. Heads work for any model with
features: they read ``ModelOutput.embedding`` when the model returns one, else
the named scalar ``features``.

A head set is one JSON file (no pickle: loading it runs no code), installed in
the weights directory through the site manifest (``weights.checked_file``).
Each head is either

- ``logistic``: p = sigmoid(x · coef + intercept). Training folds the
  standardisation and the PCA into ``coef``, so the file holds one linear map.
- ``lightgbm``: a LightGBM booster (its text form) over the same inputs.

and carries the decision threshold chosen on validation folds for the target
sensitivity. ``apply_heads`` adds a head's finding to the model's output, or
replaces the model's own score for that finding (the head was trained on the
site's labels; the note says so).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference.findings import get_finding
from inference.types import FindingResult, ModelOutput

HEADS_FORMAT = "ctnode-heads/1"


def heads_entry_name(model: str) -> str:
    """Name of a model's head set in the site manifest (and its file stem)."""
    return f"heads_{model}"


@dataclass(frozen=True, slots=True, eq=False)
class Head:
    """One finding's head: a linear map or a booster, and its decision threshold."""

    finding: str
    kind: str  # "logistic" | "lightgbm"
    threshold: float
    coef: np.ndarray | None = None
    intercept: float = 0.0
    booster_text: str = ""

    def __post_init__(self) -> None:
        get_finding(self.finding)
        if self.kind not in ("logistic", "lightgbm"):
            raise ValueError(f"Head {self.finding}: kind must be logistic or lightgbm")
        if self.kind == "logistic" and self.coef is None:
            raise ValueError(f"Head {self.finding}: a logistic head needs coef")
        if self.kind == "lightgbm" and not self.booster_text:
            raise ValueError(f"Head {self.finding}: a lightgbm head needs its booster")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"Head {self.finding}: threshold must be in [0, 1]")

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for the rows of ``x`` (n, d)."""
        if self.kind == "logistic":
            assert self.coef is not None
            z = np.asarray(x, dtype=float) @ self.coef + self.intercept
            return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)))
        return np.clip(_booster(self.booster_text).predict(np.asarray(x, dtype=float)), 0, 1)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": self.kind, "threshold": self.threshold}
        if self.kind == "logistic":
            assert self.coef is not None
            body.update(coef=[float(v) for v in self.coef], intercept=self.intercept)
        else:
            body["booster"] = self.booster_text
        return body


_BOOSTERS: dict[str, Any] = {}


def _booster(text: str) -> Any:
    """A LightGBM booster from its text form, parsed once per process."""
    if text not in _BOOSTERS:
        import lightgbm

        _BOOSTERS[text] = lightgbm.Booster(model_str=text)
    return _BOOSTERS[text]


@dataclass(frozen=True, slots=True, eq=False)
class HeadSet:
    """Every head trained on one model's features, and what they expect as input."""

    model: str
    feature_version: str
    input: str  # "embedding" | "features"
    feature_names: tuple[str, ...]  # for "features"; empty for "embedding"
    dim: int
    heads: tuple[Head, ...]
    version: str  # the training run's identifier (date + content hash)

    def __post_init__(self) -> None:
        if self.input not in ("embedding", "features"):
            raise ValueError("HeadSet.input must be 'embedding' or 'features'")
        if self.input == "features" and len(self.feature_names) != self.dim:
            raise ValueError("HeadSet.feature_names must name every input dimension")
        for h in self.heads:
            if h.coef is not None and h.coef.shape != (self.dim,):
                raise ValueError(f"head {h.finding}: coef has {h.coef.shape}, expected "
                                 f"({self.dim},)")

    @property
    def findings(self) -> tuple[str, ...]:
        return tuple(h.finding for h in self.heads)

    def inputs(self, output: ModelOutput) -> np.ndarray | None:
        """The head input vector of one output (None when the output lacks it)."""
        if self.input == "embedding":
            if output.embedding is None or output.embedding.shape != (self.dim,):
                return None
            return np.asarray(output.embedding, dtype=float)
        return np.array([output.features.get(n, math.nan) for n in self.feature_names])

    def to_json(self) -> dict[str, Any]:
        return {"format": HEADS_FORMAT, "model": self.model,
                "feature_version": self.feature_version, "input": self.input,
                "feature_names": list(self.feature_names), "dim": self.dim,
                "version": self.version, "heads": {h.finding: h.to_json() for h in self.heads}}

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json()) + "\n", encoding="utf-8")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HeadSet:
        if data.get("format") != HEADS_FORMAT:
            raise ValueError(f"not a head set (format {data.get('format')!r})")
        heads = tuple(
            Head(finding=key, kind=h["kind"], threshold=float(h["threshold"]),
                 coef=None if "coef" not in h else np.asarray(h["coef"], dtype=float),
                 intercept=float(h.get("intercept", 0.0)), booster_text=h.get("booster", ""))
            for key, h in data["heads"].items())
        return cls(model=data["model"], feature_version=data["feature_version"],
                   input=data["input"], feature_names=tuple(data["feature_names"]),
                   dim=int(data["dim"]), heads=heads, version=str(data["version"]))

    @classmethod
    def load(cls, path: Path) -> HeadSet:
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")))


def apply_heads(output: ModelOutput, head_set: HeadSet) -> ModelOutput:
    """The output with the heads' findings added (or replacing the model's own score)."""
    x = head_set.inputs(output)
    if x is None:
        return output
    probs: dict[str, float | None] = {}
    for head in head_set.heads:
        if head.kind == "logistic" and not np.all(np.isfinite(x)):
            probs[head.finding] = None  # a linear head cannot route a missing feature
        else:
            probs[head.finding] = float(np.clip(head.predict(x[None, :])[0], 0.0, 1.0))
    thresholds = {h.finding: h.threshold for h in head_set.heads}
    return with_head_findings(output, probs, head_set.version, thresholds)


def with_head_findings(output: ModelOutput, probs: Mapping[str, float | None], version: str,
                       thresholds: Mapping[str, float] | None = None) -> ModelOutput:
    """Put heads' probabilities into a model's output (training uses it for its
    out-of-fold predictions, so the stacker learns on what prediction will give)."""
    findings = {f.key: f for f in output.findings}
    for key, p in probs.items():
        if p is None:
            note = f"trained head {version}: a feature it needs is missing"
        else:
            t = (thresholds or {}).get(key)
            note = f"trained head {version} on {output.model.name} features" + (
                f" (threshold {t:.3f})" if t is not None else "")
        own = findings.get(key)
        if own is not None and own.probability is not None:
            note += "; replaces the model's own score"
        findings[key] = FindingResult(key, p, own.measurements if own else (),
                                      own.evidence if own else (), note)
    return dataclasses.replace(output, findings=tuple(findings.values()))
