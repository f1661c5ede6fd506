"""Candidates against reference lesions: hits, irrelevant findings, FROC (as LUNA16).

- A candidate hits a lesion when its centre lies inside the union of the
  readers' outlines on a slice within half a slice spacing, or within the
  lesion's radius of its centre (LUNA16's hit criterion, Setio et al., Med
  Image Anal 2017;42:1, widened by the outline test for irregular lesions).
- For an agreement level k, lesions outlined by fewer than k readers and the
  readers' point marks (nodules < 3 mm, non-nodules) are irrelevant findings:
  a candidate on them is neither a hit nor a false positive (LUNA16). A point
  mark is "on" a candidate when it lies within the candidate's radius.
- Several candidates on one lesion: the best-scoring one counts, the others
  are ignored (LUNA16).
- FROC: sensitivity at 1/8, 1/4, 1/2, 1, 2, 4 and 8 false positives per scan
  and their mean (the CPM of Niemeijer et al., IEEE TMI 2011;30:1, LUNA16's
  score).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from skimage.measure import points_in_poly

from evaluation.types import CaseTruth, Detection, LesionTruth

FROC_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def inside_outline(point: Sequence[float], truth: LesionTruth) -> bool:
    """True when ``point`` (LPS) lies in the readers' outline on a slice at its height."""
    half = truth.slice_spacing_mm / 2.0 + 1e-3
    for region in truth.regions:
        if abs(region.z_mm - point[2]) > half:
            continue
        for poly in region.polygons:
            if len(poly) >= 3 and bool(points_in_poly([point[:2]], np.asarray(poly))[0]):
                return True
    return False


def hits(d: Detection, truth: LesionTruth) -> bool:
    """The hit criterion (module doc)."""
    dist = float(np.linalg.norm(np.subtract(d.centre_lps, truth.centre_lps)))
    return dist <= truth.radius_mm or inside_outline(d.centre_lps, truth)


def _on_point(d: Detection, points: Sequence[Sequence[float]]) -> bool:
    if not points:
        return False
    dist = np.linalg.norm(np.asarray(points, dtype=float) - np.asarray(d.centre_lps), axis=1)
    return bool((dist <= max(d.radius_mm, 1e-6)).any())


@dataclass(frozen=True, slots=True)
class Scored:
    """The candidates of one scan labelled for one agreement level."""

    n_reference: int
    hit_scores: dict[str, float]  # lesion id -> best score of a candidate on it
    fp_scores: tuple[float, ...]  # scores of candidates on nothing relevant


def score_case(truth: CaseTruth, detections: Sequence[Detection], min_readers: int) -> Scored:
    """Label each candidate of one scan: hit (best per lesion), irrelevant, or false positive."""
    reference = [t for t in truth.lesions if t.n_readers >= min_readers]
    irrelevant = [t for t in truth.lesions if t.n_readers < min_readers]
    best: dict[str, float] = {}
    fps: list[float] = []
    for d in sorted(detections, key=lambda x: -x.score):
        on = [t for t in reference if hits(d, t)]
        if on:
            for t in on:
                best[t.lesion_id] = max(best.get(t.lesion_id, -1.0), d.score)
            continue
        if any(hits(d, t) for t in irrelevant) or _on_point(d, truth.irrelevant_lps):
            continue
        fps.append(d.score)
    return Scored(len(reference), best, tuple(fps))


def operating_point(cases: Sequence[Scored], threshold: float) -> tuple[int, int, int]:
    """(lesions found, reference lesions, false positives) at ``score >= threshold``."""
    found = sum(sum(s >= threshold for s in c.hit_scores.values()) for c in cases)
    n_ref = sum(c.n_reference for c in cases)
    fps = sum(sum(s >= threshold for s in c.fp_scores) for c in cases)
    return found, n_ref, fps


def froc(cases: Sequence[Scored]) -> tuple[tuple[float, ...], float]:
    """Sensitivity at each of ``FROC_RATES`` false positives per scan, and their mean (CPM).

    Sweeping the threshold down through every candidate score; at each rate the
    best sensitivity reached without exceeding it. NaN without reference lesions.
    """
    n_ref = sum(c.n_reference for c in cases)
    n_scans = len(cases)
    if n_ref == 0 or n_scans == 0:
        nan = float("nan")
        return tuple(nan for _ in FROC_RATES), nan
    events = [(s, 1) for c in cases for s in c.hit_scores.values()]
    events += [(s, 0) for c in cases for s in c.fp_scores]
    events.sort(key=lambda e: -e[0])
    tp = fp = 0
    curve = [(0.0, 0.0)]
    i = 0
    while i < len(events):
        s = events[i][0]
        while i < len(events) and events[i][0] == s:  # one threshold, all ties at once
            tp += events[i][1]
            fp += 1 - events[i][1]
            i += 1
        curve.append((fp / n_scans, tp / n_ref))
    sens = tuple(max(se for rate, se in curve if rate <= r) for r in FROC_RATES)
    return sens, float(np.mean(sens))
