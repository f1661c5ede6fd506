"""The analyzer on the gap-free phantom cohort (``phantom.cohort``): honest per-finding scores.

Each case is generated, made to look like its scanner (kernel emulation,
header hints), analysed exactly as a patient's volume, and compared with the
cohort's reference standard (``phantom.cohort.reference``).

Counting (intention to diagnose, Schuetz et al., BMJ 2012;345:e6717): a
finding the analyzer did not assess, or a case it failed on, is never
dropped. It counts as a false negative when the finding is present and as a
false positive when absent; for the ROC it ranks below every positive score
when present and above every negative when absent. The AUC over the
assessed cases only is shown beside it. AUCs come with stratified percentile
bootstrap 95 % intervals, sensitivities and specificities with Wilson
intervals (``inference.metrics``).

Thresholds are not fitted here: this module only measures.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ctnode.settings import AnalyzerSettings
from inference.analyzer.evaluation import phantom_volume
from inference.errors import InferenceError
from inference.metrics import bootstrap_auc_ci, wilson_ci
from inference.models.chest_quant import ChestQuantModel

logger = logging.getLogger(__name__)

SHARP_GAIN = 1.5
"""Unsharp-mask gain of the sharp-kernel emulation (in-plane, sigma 1 pixel): lifts the
high spatial frequencies about 2.5-fold, the MTF ratio of a lung/bone kernel (e.g.
Siemens B70f) to a soft one (B30f) near 0.5 lp/mm (phantom physics: noise SD rises
~2x and edges overshoot, as on sharp reconstructions)."""
HEADER_KERNEL = {"soft": "B30f", "sharp": "B70f"}


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One cohort case: reference per finding, probability per finding, measurement pairs."""

    index: int
    seed: int
    kernel: str
    scan: str  # e.g. "2.5 mm, 120 kVp, arterial"
    reference: dict[str, str]  # finding -> present / absent
    probability: dict[str, float | None]
    measurements: dict[str, tuple[float, float]] = field(default_factory=dict)
    seconds: float = 0.0
    error: str = ""


@dataclass(frozen=True, slots=True)
class FindingMetrics:
    """Detection metrics of one finding over the cohort (intention to diagnose)."""

    key: str
    n_pos: int
    n_neg: int
    n_not_assessed: int
    n_failed: int
    sensitivity: float
    sensitivity_ci: tuple[float, float]
    specificity: float
    specificity_ci: tuple[float, float]
    auc: tuple[float, float, float]  # (AUC, lower, upper), all cases
    auc_assessed: tuple[float, float, float]  # over assessed cases only


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
    """Everything ``ctnode evaluate`` prints for the phantom cohort."""

    cases: tuple[CaseResult, ...]
    findings: tuple[FindingMetrics, ...]
    measurements: tuple[MeasurementMetrics, ...]
    threshold: float
    seconds_per_case: float

    def to_json(self) -> dict[str, Any]:
        def num(v: Any) -> Any:
            if isinstance(v, tuple):
                return [num(x) for x in v]
            return None if isinstance(v, float) and math.isnan(v) else v

        return {
            "threshold": self.threshold,
            "n_cases": len(self.cases),
            "seconds_per_case": round(self.seconds_per_case, 2),
            "findings": [{k: num(getattr(f, k)) for k in f.__slots__} for f in self.findings],
            "measurements": [{k: getattr(m, k) for k in m.__slots__} for m in self.measurements],
            "failed_cases": [{"index": c.index, "seed": c.seed, "error": c.error}
                             for c in self.cases if c.error],
        }

    def table(self) -> str:
        """Markdown tables: findings then measurements."""
        def pct(v: float, ci: tuple[float, float]) -> str:
            if math.isnan(v):
                return "-"
            return f"{100 * v:.0f}% ({100 * ci[0]:.0f}-{100 * ci[1]:.0f})"

        def auc(a: tuple[float, float, float]) -> str:
            return "-" if math.isnan(a[0]) else f"{a[0]:.2f} ({a[1]:.2f}-{a[2]:.2f})"

        lines = ["| finding | pos | neg | not assessed | failed | sensitivity (95% CI) | "
                 "specificity (95% CI) | AUC (95% CI) | AUC assessed only |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for f in self.findings:
            lines.append(f"| {f.key} | {f.n_pos} | {f.n_neg} | {f.n_not_assessed} | "
                         f"{f.n_failed} | {pct(f.sensitivity, f.sensitivity_ci)} | "
                         f"{pct(f.specificity, f.specificity_ci)} | {auc(f.auc)} | "
                         f"{auc(f.auc_assessed)} |")
        lines += ["", "| measurement | unit | n | mean error | mean abs error | max abs error |",
                  "|---|---|---|---|---|---|"]
        for m in self.measurements:
            lines.append(f"| {m.name} | {m.unit} | {m.n} | {m.mean_error:+.2f} | "
                         f"{m.mean_abs_error:.2f} | {m.max_abs_error:.2f} |")
        return "\n".join(lines)


def sharpen(hu: np.ndarray) -> np.ndarray:
    """Sharp-kernel emulation: in-plane unsharp mask (``SHARP_GAIN``), stored as int16."""
    f = hu.astype(np.float32)
    blur = ndi.gaussian_filter(f, (0.0, 1.0, 1.0), mode="nearest")
    out = f + SHARP_GAIN * (f - blur)
    return np.clip(np.rint(out), -1024, 32767).astype(np.int16)


def run_case(case: Any, model: ChestQuantModel) -> CaseResult:
    """Generate one cohort case, analyse it, pair reference with prediction."""
    import dataclasses

    from phantom import generate_phantom
    from phantom.cohort import COHORT_FINDINGS, reference

    ph = generate_phantom(case.spec)
    if case.kernel == "sharp":
        ph = dataclasses.replace(ph, hu=sharpen(ph.hu))
    ref = reference(ph.truth)
    spec = case.spec
    scan = (f"{spec.slice_spacing_mm:g} mm, {spec.kvp:g} kVp, {spec.contrast_phase}, "
            f"{case.kernel}")
    t0 = time.perf_counter()
    try:
        out = model.predict(phantom_volume(ph, HEADER_KERNEL[case.kernel], spec.kvp))
    except InferenceError as exc:
        return CaseResult(case.index, spec.seed, case.kernel, scan, ref,
                          {k: None for k in COHORT_FINDINGS}, {}, time.perf_counter() - t0,
                          error=f"{exc.code}: {exc}")
    seconds = time.perf_counter() - t0
    prob = {f.key: f.probability for f in out.findings}
    return CaseResult(case.index, spec.seed, case.kernel, scan, ref, prob,
                      _pairs(ph.truth, dict(out.features), out.findings), seconds)


def _pairs(truth: dict[str, Any], f: dict[str, float], findings: Any
           ) -> dict[str, tuple[float, float]]:
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
    evidence = [e for r in findings if r.key in ("lung_nodule", "lung_mass")
                and r.probability is not None and r.probability >= 0.5 for e in r.evidence
                if e.diameter_mm is not None]
    for les in truth["lesions"]:
        if les["type"] != "nodule":
            continue
        d = float(les["diameter_mm"])
        c = np.asarray(les["center_lps_mm"], dtype=float)
        near = [e for e in evidence
                if np.linalg.norm(np.asarray(e.center_lps) - c) <= max(d / 2.0, 5.0)]
        if near:
            key = "mass_diameter_mm" if d >= 30.0 else "nodule_diameter_mm"
            out[key] = (d, float(near[0].diameter_mm))
    return out


_UNITS = {"lung_volume_pct": "%", "laa950_abs": "% points", "effusion_volume_pct": "%",
          "vertebral_hu": "HU", "cardiothoracic_ratio": "1", "ascending_aorta_mm": "mm",
          "descending_aorta_mm": "mm", "nodule_diameter_mm": "mm", "mass_diameter_mm": "mm"}


def finding_metrics(key: str, cases: list[CaseResult], threshold: float,
                    n_boot: int = 1000, seed: int = 0) -> FindingMetrics:
    """Metrics of one finding, counting not-assessed and failed cases (module doc)."""
    rows = [(c.reference[key] == "present", c.probability.get(key), bool(c.error))
            for c in cases if key in c.reference]
    y = np.array([t for t, _, _ in rows], dtype=int)
    n_pos, n_neg = int(y.sum()), int(y.size - y.sum())
    assessed = np.array([p is not None for _, p, _ in rows], dtype=bool)
    failed = sum(f for _, _, f in rows)
    p = np.array([(-1.0 if t else 2.0) if q is None else float(q) for t, q, _ in rows])
    called = assessed & (p >= threshold)
    tp = int((called & (y == 1)).sum())
    tn = int((~called & assessed & (y == 0)).sum())
    sens = tp / n_pos if n_pos else math.nan
    spec = tn / n_neg if n_neg else math.nan
    auc_all = bootstrap_auc_ci(y, p, n=n_boot, seed=seed)
    auc_ass = bootstrap_auc_ci(y[assessed], p[assessed], n=n_boot, seed=seed) \
        if assessed.any() else (math.nan, math.nan, math.nan)
    return FindingMetrics(key, n_pos, n_neg, int((~assessed).sum()) - failed, failed,
                          sens, wilson_ci(tp, n_pos), spec, wilson_ci(tn, n_neg),
                          auc_all, auc_ass)


def summarise(cases: list[CaseResult], threshold: float, n_boot: int = 1000) -> CohortReport:
    """Per-finding detection metrics and per-measurement errors."""
    from phantom.cohort import COHORT_FINDINGS

    findings = [finding_metrics(k, cases, threshold, n_boot) for k in COHORT_FINDINGS
                if any(k in c.reference for c in cases)]
    good = [c for c in cases if not c.error]
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
                    matrix: int = 128, n_boot: int = 1000) -> CohortReport:
    """Run the analyzer on ``n_cases`` gap-free cohort cases (deterministic from ``seed``)."""
    from phantom.cohort import sample_cohort

    model = ChestQuantModel(settings)
    cases: list[CaseResult] = []
    for case in sample_cohort(n_cases, seed, matrix):
        cases.append(run_case(case, model))
        logger.info("case %d/%d (%s): %s", case.index + 1, n_cases, cases[-1].scan,
                    ", ".join(sorted(case.drawn)) or "normal")
    return summarise(cases, threshold, n_boot)
