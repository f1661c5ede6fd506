"""Tables of the real-case evaluation: lesions found and missed, FROC, diameters, findings.

Only the series the pipeline selects counts in the totals (one scan per
case); other reconstructions of the same acquisition are listed, marked
"alt.". A failed analysis counts: its lesions are missed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evaluation.matching import FROC_RATES, froc, operating_point, score_case
from evaluation.types import RealCaseResult
from inference.analyzer.mapping import assessed_keys

LEVELS = (1, 2, 3)


@dataclass(frozen=True, slots=True)
class LevelMetrics:
    """Per-lesion detection at one readers' agreement level (lesions outlined by >= k)."""

    min_readers: int
    n_scans: int
    n_lesions: int
    found: int
    false_positives: int
    froc_sensitivity: tuple[float, ...]
    cpm: float

    @property
    def sensitivity(self) -> float:
        return self.found / self.n_lesions if self.n_lesions else math.nan

    @property
    def fp_per_scan(self) -> float:
        return self.false_positives / self.n_scans if self.n_scans else math.nan


@dataclass(frozen=True, slots=True)
class RealSummary:
    """Everything the real-case tables print."""

    results: tuple[RealCaseResult, ...]
    threshold: float
    levels: tuple[LevelMetrics, ...]
    diameter_errors_mm: tuple[float, ...]  # measured long axis - readers' mean (outlined, hit)

    def to_json(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "levels": [{"min_readers": lv.min_readers, "n_scans": lv.n_scans,
                        "n_lesions": lv.n_lesions, "found": lv.found,
                        "sensitivity": _num(lv.sensitivity),
                        "false_positives": lv.false_positives,
                        "fp_per_scan": _num(lv.fp_per_scan),
                        "froc": dict(zip((str(r) for r in FROC_RATES),
                                         (_num(s) for s in lv.froc_sensitivity), strict=True)),
                        "cpm": _num(lv.cpm)} for lv in self.levels],
            "diameter_error_mm": {"n": len(self.diameter_errors_mm),
                                  "mean": _num(_mean(self.diameter_errors_mm)),
                                  "mean_abs": _num(_mean(np.abs(self.diameter_errors_mm)))},
            "cases": [_case_json(r) for r in self.results],
        }


def _num(v: float) -> float | None:
    return None if v is None or math.isnan(v) else round(float(v), 4)


def _mean(v: Sequence[float] | np.ndarray) -> float:
    return float(np.mean(v)) if len(v) else math.nan


def _primary(r: RealCaseResult) -> bool:
    return r.notes.get("primary") == "yes"


def summarise_real(results: Sequence[RealCaseResult], threshold: float) -> RealSummary:
    """Per-level sensitivity / FP per scan / FROC over the selected series of each case."""
    primary = [r for r in results if _primary(r)]
    levels = []
    for k in LEVELS:
        scored = [score_case(r.truth, r.detections, k) for r in primary]
        found, n_ref, fps = operating_point(scored, threshold)
        sens, cpm = froc(scored)
        levels.append(LevelMetrics(k, len(primary), n_ref, found, fps, sens, cpm))
    errors = tuple(o.hit.long_axis_mm - o.truth.diameter_mm for r in primary
                   for o in r.outcomes if o.hit is not None and o.truth.source == "lidc")
    return RealSummary(tuple(results), threshold, tuple(levels), errors)


def _pct(v: float) -> str:
    return "-" if math.isnan(v) else f"{100 * v:.0f}%"


def real_tables(s: RealSummary) -> str:
    """Markdown: lesions per case, detection per agreement level, finding probabilities."""
    t = s.threshold
    lines = [f"Lesions (a candidate at p >= {t} is a call; alt. = another reconstruction, "
             "not in the totals):", "",
             "| case | lesion | readers | readers' diameter (mm) | best candidate p | "
             "measured long axis (mm) | error (mm) | called |",
             "|---|---|---|---|---|---|---|---|"]
    for r in s.results:
        tag = "" if _primary(r) else " (alt.)"
        if r.error:
            lines.append(f"| {r.name}{tag} | failed: {r.error} | | | | | | |")
        for o in r.outcomes:
            d = o.truth
            readers = str(d.n_readers) if d.source == "lidc" else "box"
            if o.hit is None:
                lines.append(f"| {r.name}{tag} | {d.lesion_id} | {readers} | "
                             f"{d.diameter_mm:.1f} | - | - | - | missed |")
                continue
            err = f"{o.hit.long_axis_mm - d.diameter_mm:+.1f}" if d.source == "lidc" else "-"
            called = "yes" if o.hit.score >= t else "no"
            lines.append(f"| {r.name}{tag} | {d.lesion_id} | {readers} | {d.diameter_mm:.1f} | "
                         f"{o.hit.score:.2f} | {o.hit.long_axis_mm:.1f} | {err} | {called} |")
    rates = " | ".join(f"{r:g}" for r in FROC_RATES)
    lines += ["", "Detection per readers' agreement (selected series, one scan per case; "
              "FROC: sensitivity at 1/8..8 false positives per scan, CPM = their mean):", "",
              "| agreement | scans | lesions | found | sensitivity | FP per scan | "
              f"{rates} | CPM |",
              "|---|---|---|---|---|---|" + "---|" * len(FROC_RATES) + "---|"]
    for lv in s.levels:
        fr = " | ".join(_pct(v) for v in lv.froc_sensitivity)
        lines.append(f"| >= {lv.min_readers} | {lv.n_scans} | {lv.n_lesions} | {lv.found} | "
                     f"{_pct(lv.sensitivity)} | {lv.fp_per_scan:.2f} | {fr} | "
                     f"{'-' if math.isnan(lv.cpm) else f'{lv.cpm:.2f}'} |")
    e = np.asarray(s.diameter_errors_mm)
    if e.size:
        lines += ["", f"Diameter (outlined lesions hit, n = {e.size}): measured long axis minus "
                  f"readers' mean {e.mean():+.1f} mm on average, mean absolute error "
                  f"{np.abs(e).mean():.1f} mm."]
    lines += ["", "Finding probabilities (- = not assessed, reason in the JSON):", "",
              "| finding | " + " | ".join(r.name + ("" if _primary(r) else " (alt.)")
                                         for r in s.results) + " |",
              "|---|" + "---|" * len(s.results)]
    for key in assessed_keys():
        ps = [r.probabilities.get(key) for r in s.results]
        lines.append(f"| {key} | " + " | ".join("-" if p is None else f"{p:.2f}" for p in ps)
                     + " |")
    return "\n".join(lines)


def _case_json(r: RealCaseResult) -> dict[str, Any]:
    return {
        "name": r.name, "primary": _primary(r), "series_uid": r.series_uid,
        "kernel": r.kernel, "slice_mm": r.slice_mm, "error": r.error,
        "seconds": round(r.seconds, 1), "conditions": r.conditions,
        "lesions": [{**o.truth.to_json(),
                     "hit": None if o.hit is None else {
                         "centre_lps": [round(v, 1) for v in o.hit.centre_lps],
                         "score": round(o.hit.score, 3),
                         "long_axis_mm": round(o.hit.long_axis_mm, 1),
                         "short_axis_mm": round(o.hit.short_axis_mm, 1)}}
                    for o in r.outcomes],
        "n_candidates": len(r.detections),
        "probabilities": {k: (None if p is None else round(p, 3))
                          for k, p in r.probabilities.items()},
        "not_assessed": {k: v for k, v in r.notes.items() if k != "primary"},
    }
