"""Hits, irrelevant findings and FROC points on constructed scans with known answers."""

from __future__ import annotations

import math

import pytest

from evaluation.matching import FROC_RATES, froc, hits, operating_point, score_case
from evaluation.types import CaseTruth, Detection, LesionTruth, SliceRegion


def _lesion(lid: str, centre: tuple[float, float, float], d: float, readers: int,
            region: bool = False) -> LesionTruth:
    regions = ()
    if region:  # an L-shaped outline reaching 30 mm to the right of the centre
        x, y, z = centre
        poly = ((x - 5, y - 5), (x + 30, y - 5), (x + 30, y + 5), (x - 5, y + 5))
        regions = (SliceRegion(z, (poly,)),)
    return LesionTruth(lid, "lidc", centre, centre, centre, d, (d,), readers, regions, 2.0)


def _det(x: float, score: float, long_mm: float = 10.0) -> Detection:
    return Detection((x, 0.0, 0.0), score, long_mm, long_mm)


def test_hit_by_radius_or_by_outline() -> None:
    t = _lesion("a", (0.0, 0.0, 0.0), 10.0, 4, region=True)
    assert hits(_det(4.9, 1.0), t)  # within the 5 mm radius
    assert hits(_det(25.0, 1.0), t)  # outside the radius, inside the outline
    assert not hits(Detection((25.0, 0.0, 3.0), 1.0, 5.0, 5.0), t)  # outline's slice is 1 mm off
    assert not hits(_det(40.0, 1.0), t)


def test_agreement_levels_make_weaker_lesions_irrelevant() -> None:
    truth = CaseTruth("c", "", (_lesion("four", (0.0, 0.0, 0.0), 10.0, 4),
                                _lesion("one", (100.0, 0.0, 0.0), 10.0, 1)),
                      irrelevant_lps=((200.0, 0.0, 0.0),))
    dets = [_det(1.0, 0.9), _det(2.0, 0.8), _det(101.0, 0.7), _det(203.0, 0.6),
            _det(300.0, 0.4)]
    at1 = score_case(truth, dets, 1)
    assert at1.n_reference == 2 and at1.hit_scores == {"four": 0.9, "one": 0.7}
    assert at1.fp_scores == (0.4,)  # the second hit on "four" and the point mark are ignored
    at3 = score_case(truth, dets, 3)
    assert at3.n_reference == 1 and at3.hit_scores == {"four": 0.9}
    assert at3.fp_scores == (0.4,)  # a candidate on a 1-reader lesion is not a false positive
    assert operating_point([at1], 0.5) == (2, 2, 0)
    assert operating_point([at1], 0.3) == (2, 2, 1)


def test_froc_points_and_cpm() -> None:
    truth = CaseTruth("c", "", (_lesion("a", (0.0, 0.0, 0.0), 10.0, 4),
                                _lesion("b", (100.0, 0.0, 0.0), 10.0, 4)))
    # one scan: hit a at 0.9, false positives at 0.8 and 0.6, hit b at 0.5
    scored = [score_case(truth, [_det(0.0, 0.9), _det(50.0, 0.8), _det(70.0, 0.6),
                                 _det(100.0, 0.5)], 1)]
    sens, cpm = froc(scored)
    # FP/scan 0 -> sens 0.5; FP 1 -> 0.5; FP 2 -> 1.0
    assert sens == (0.5, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0)
    assert cpm == pytest.approx(sum(sens) / len(FROC_RATES))
    empty, nan_cpm = froc([score_case(CaseTruth("n", "", ()), [_det(0.0, 0.5)], 1)])
    assert math.isnan(nan_cpm) and all(math.isnan(v) for v in empty)
