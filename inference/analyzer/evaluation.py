"""Validation of the analyzer on a generated phantom cohort with known truth.

Each case is a phantom (``phantom.generate_phantom``) with random lesions
(``phantom.presets.random_lesions``); its truth says, for every finding, present,
absent or not modelled, and gives the expected measurements. The analyzer is
run on the phantom's HU volume exactly as on a patient, then compared:
per finding sensitivity and specificity at the decision threshold, AUC
(Mann-Whitney), how often it was not assessed; and measurement errors.

The thresholds are not fitted here: this module only measures.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ctnode.settings import AnalyzerSettings
from inference.errors import InferenceError
from inference.findings import FINDING_KEYS
from inference.models.chest_quant import ChestQuantModel
from series_selector.types import HUVolume

logger = logging.getLogger(__name__)

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One phantom: truth per finding, probability per finding, measurement pairs."""

    seed: int
    lesions: tuple[str, ...]
    truth: dict[str, str]  # key -> present / absent / not_modelled
    probability: dict[str, float | None]
    measurements: dict[str, tuple[float, float]]  # name -> (expected, measured)
    seconds: float
    error: str = ""


@dataclass(frozen=True, slots=True)
class FindingMetrics:
    """Detection metrics of one finding over a cohort."""

    key: str
    n_pos: int
    n_neg: int
    n_not_assessed: int
    sensitivity: float | None
    specificity: float | None
    auc: float | None


@dataclass(frozen=True, slots=True)
class MeasurementMetrics:
    """Error of one measurement over the cases that have it."""

    name: str
    unit: str
    n: int
    mean_error: float
    mean_abs_error: float
    max_abs_error: float


@dataclass(frozen=True, slots=True)
class CohortReport:
    """Everything ``ctnode evaluate`` prints."""

    cases: tuple[CaseResult, ...]
    findings: tuple[FindingMetrics, ...]
    measurements: tuple[MeasurementMetrics, ...]
    threshold: float
    seconds_per_case: float
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "n_cases": len(self.cases),
            "seconds_per_case": round(self.seconds_per_case, 2),
            "findings": [vars_of(f) for f in self.findings],
            "measurements": [vars_of(m) for m in self.measurements],
            "failed_cases": [{"seed": c.seed, "error": c.error} for c in self.cases if c.error],
        }

    def table(self) -> str:
        """Markdown tables: findings then measurements."""
        def fmt(v: float | None, pct: bool = True) -> str:
            if v is None:
                return "-"
            return f"{100 * v:.0f}%" if pct else f"{v:.2f}"
        lines = ["| finding | pos | neg | not assessed | sensitivity | specificity | AUC |",
                 "|---|---|---|---|---|---|---|"]
        for f in self.findings:
            lines.append(f"| {f.key} | {f.n_pos} | {f.n_neg} | {f.n_not_assessed} | "
                         f"{fmt(f.sensitivity)} | {fmt(f.specificity)} | "
                         f"{fmt(f.auc, pct=False)} |")
        lines += ["", "| measurement | unit | n | mean error | mean abs error | max abs error |",
                  "|---|---|---|---|---|---|"]
        for m in self.measurements:
            lines.append(f"| {m.name} | {m.unit} | {m.n} | {m.mean_error:+.2f} | "
                         f"{m.mean_abs_error:.2f} | {m.max_abs_error:.2f} |")
        return "\n".join(lines)


def vars_of(obj: Any) -> dict[str, Any]:
    return {k: getattr(obj, k) for k in obj.__slots__}


def phantom_volume(ph: Any) -> HUVolume:
    """A phantom as the HU volume the pipeline would hand the model."""
    sx, sy, sz = (float(s) for s in ph.spacing)
    ox, oy, oz = (float(o) for o in ph.origin)
    return HUVolume(voxels=ph.hu, spacing=(sx, sy, sz), origin=(ox, oy, oz), direction=IDENTITY,
                    series_uid="phantom", slice_thickness_mm=float(ph.spacing[2]))


def run_case(seed: int, lesions: tuple[Any, ...], model: ChestQuantModel,
             spec_kw: dict[str, Any]) -> CaseResult:
    """Generate one phantom, analyse it, pair truth with prediction."""
    from phantom import generate_phantom, small_spec

    ph = generate_phantom(small_spec(lesions, seed=seed, **spec_kw))
    names = tuple(type(les).__name__ for les in lesions)
    truth: dict[str, str] = dict(ph.truth["findings"])
    t0 = time.perf_counter()
    try:
        out = model.predict(phantom_volume(ph))
    except InferenceError as exc:
        return CaseResult(seed, names, truth, {k: None for k in FINDING_KEYS}, {},
                          time.perf_counter() - t0, error=f"{exc.code}: {exc}")
    seconds = time.perf_counter() - t0
    prob = {f.key: f.probability for f in out.findings}
    feats = dict(out.features)
    return CaseResult(seed, names, truth, prob, _pairs(ph.truth, feats), seconds)


def _pairs(truth: dict[str, Any], f: dict[str, float]) -> dict[str, tuple[float, float]]:
    """(expected, measured) for each measurement the truth and the analyzer both have."""
    m = truth["measurements"]
    out: dict[str, tuple[float, float]] = {}
    lung = m["lung_volume_ml"]["total"]
    if "lung_volume" in f and lung > 0:
        out["lung_volume_pct"] = (0.0, 100.0 * (f["lung_volume"] - lung) / lung)
    if "laa950" in f:
        out["laa950_abs"] = (m["laa950_percent"], f["laa950"])
    eff = sum(m["pleural_effusion_ml"].values())
    if eff > 0 and "pleural_effusion_volume" in f:
        out["effusion_volume_pct"] = (0.0, 100.0 * (f["pleural_effusion_volume"] - eff) / eff)
    if "vertebral_trabecular_hu" in f and m.get("vertebral_trabecular_hu") is not None:
        out["vertebral_hu"] = (m["vertebral_trabecular_hu"], f["vertebral_trabecular_hu"])
    if "cardiothoracic_ratio" in f:
        out["cardiothoracic_ratio"] = (m["ctr"], f["cardiothoracic_ratio"])
    if "ascending_aorta_diameter" in f:
        out["ascending_aorta_mm"] = (m["aorta_ascending_diameter_mm"],
                                     f["ascending_aorta_diameter"])
    if "descending_aorta_diameter" in f:
        out["descending_aorta_mm"] = (m["aorta_descending_diameter_mm"],
                                      f["descending_aorta_diameter"])
    nodules = [les for les in truth["lesions"] if les["type"] == "nodule"]
    if len(nodules) == 1:
        d = float(nodules[0]["diameter_mm"])
        name = "mass_diameter" if d >= 30.0 else "nodule_diameter"
        if f.get(f"{name.split('_')[0]}_score", 0.0) >= 0.5 and name in f:
            out["lesion_diameter_mm"] = (d, f[name])
    return out


_UNITS = {"lung_volume_pct": "%", "laa950_abs": "% points", "effusion_volume_pct": "%",
          "vertebral_hu": "HU", "cardiothoracic_ratio": "1", "ascending_aorta_mm": "mm",
          "descending_aorta_mm": "mm", "lesion_diameter_mm": "mm"}


def auc(pos: list[float], neg: list[float]) -> float | None:
    """Mann-Whitney AUC (ties count half); None without both classes."""
    if not pos or not neg:
        return None
    p = np.asarray(pos)[:, None]
    n = np.asarray(neg)[None, :]
    return float(((p > n).sum() + 0.5 * (p == n).sum()) / (p.size * n.size))


def summarise(cases: list[CaseResult], threshold: float) -> CohortReport:
    """Per-finding detection metrics and per-measurement errors."""
    good = [c for c in cases if not c.error]
    findings: list[FindingMetrics] = []
    for key in FINDING_KEYS:
        rows = [(c.truth.get(key), c.probability.get(key)) for c in good]
        rows = [(t, p) for t, p in rows if t in ("present", "absent")]
        if not rows:
            continue
        na = sum(p is None for _, p in rows)
        pos = [p for t, p in rows if t == "present" and p is not None]
        neg = [p for t, p in rows if t == "absent" and p is not None]
        n_pos = sum(t == "present" for t, _ in rows)
        n_neg = sum(t == "absent" for t, _ in rows)
        sens = (sum(p >= threshold for p in pos) / len(pos)) if pos else None
        spec = (sum(p < threshold for p in neg) / len(neg)) if neg else None
        findings.append(FindingMetrics(key, n_pos, n_neg, na, sens, spec, auc(pos, neg)))
    measures: list[MeasurementMetrics] = []
    for name, unit in _UNITS.items():
        errs = [c.measurements[name][1] - c.measurements[name][0]
                for c in good if name in c.measurements]
        if errs:
            e = np.asarray(errs)
            measures.append(MeasurementMetrics(name, unit, len(errs), float(e.mean()),
                                               float(np.abs(e).mean()), float(np.abs(e).max())))
    per_case = float(np.mean([c.seconds for c in good])) if good else math.nan
    return CohortReport(tuple(cases), tuple(findings), tuple(measures), threshold, per_case)


def evaluate_cohort(n_cases: int, seed: int, settings: AnalyzerSettings, threshold: float,
                    p_each: float = 0.3, spec_kw: dict[str, Any] | None = None
                    ) -> CohortReport:
    """Run the analyzer on ``n_cases`` random phantoms (deterministic from ``seed``)."""
    from phantom.presets import random_lesions

    rng = np.random.default_rng(seed)
    model = ChestQuantModel(settings)
    cases: list[CaseResult] = []
    for i in range(n_cases):
        lesions = random_lesions(rng, p_each)
        case_seed = int(rng.integers(0, 2**31 - 1))
        cases.append(run_case(case_seed, lesions, model, dict(spec_kw or {})))
        logger.info("case %d/%d: %s", i + 1, n_cases, ", ".join(cases[-1].lesions) or "normal")
    return summarise(cases, threshold)
