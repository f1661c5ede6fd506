"""Measurement-to-probability rules: smooth, monotone, honest about what is not assessed."""

from __future__ import annotations

import dataclasses

import pytest

from ctnode.settings import AnalyzerSettings
from inference.analyzer import analyze, assessed_keys, logistic, map_findings
from inference.findings import FINDING_KEYS
from inference.types import ImageConditions
from tests.inference.analyzer_synth import synthetic_chest


def test_logistic_is_half_at_threshold_and_monotone() -> None:
    assert logistic(6.0, 6.0, 1.5) == pytest.approx(0.5)
    xs = [0, 3, 6, 9, 12]
    ps = [logistic(x, 6.0, 1.5) for x in xs]
    assert ps == sorted(ps) and ps[0] < 0.05 and ps[-1] > 0.95
    assert logistic(1e9, 0, 1) == 1.0 and logistic(-1e9, 0, 1) == 0.0
    with pytest.raises(ValueError):
        logistic(1, 1, 0)


def test_every_finding_is_returned_and_unassessed_ones_are_none() -> None:
    a = analyze(synthetic_chest().volume, AnalyzerSettings())
    results = map_findings(a, AnalyzerSettings())
    assert tuple(r.key for r in results) == FINDING_KEYS
    scored = {r.key for r in results if r.probability is not None}
    # What a volume allows is a subset of what the model can assess; lung
    # findings are always possible on a chest.
    assert {"lung_opacity", "consolidation", "lung_nodule"} <= scored
    # 5 mm synthetic sections: LAA%-950 outside its validity, said so
    emph = next(r for r in results if r.key == "emphysema")
    assert emph.probability is None and "5 mm sections" in emph.note
    assert scored <= set(assessed_keys())
    for r in results:
        if r.probability is None:
            assert r.note.startswith("not assessed")
            assert r.note.lower().count("not assessed") == 1, r.note  # said once
        else:
            assert r.measurements, r.key


def _thin_soft(a):  # type: ignore[no-untyped-def]
    """The same analysis as if the series were a thin soft-kernel one (constructed
    conditions: the synthetic chest's own slices are 5 mm)."""
    return dataclasses.replace(a, conditions=ImageConditions(kernel_class="soft",
                                                             slice_thickness_mm=1.0))


def test_emphysema_probability_follows_laa() -> None:
    s = AnalyzerSettings()
    low = map_findings(_thin_soft(analyze(synthetic_chest().volume, s)), s)
    high = map_findings(_thin_soft(analyze(synthetic_chest(emphysema_fraction=0.15).volume,
                                           s)), s)
    p = {r.key: r.probability for r in low}
    q = {r.key: r.probability for r in high}
    assert p["emphysema"] < 0.1 < 0.9 < q["emphysema"]


def test_emphysema_needs_soft_kernel_and_thin_sections() -> None:
    s = AnalyzerSettings()
    a = analyze(synthetic_chest(emphysema_fraction=0.15).volume, s)
    sharp = dataclasses.replace(a, conditions=ImageConditions(kernel_class="sharp",
                                                              slice_thickness_mm=1.0))
    thick = dataclasses.replace(a, conditions=ImageConditions(kernel_class="soft",
                                                              slice_thickness_mm=5.0))
    for variant, why in ((sharp, "sharp"), (thick, "5 mm sections")):
        (emph,) = [r for r in map_findings(variant, s) if r.key == "emphysema"]
        assert emph.probability is None and why in emph.note
    (ok,) = [r for r in map_findings(_thin_soft(a), s) if r.key == "emphysema"]
    assert ok.probability is not None and ok.probability > 0.9


def test_threshold_is_a_setting() -> None:
    chest = synthetic_chest(emphysema_fraction=0.08, seed=1)
    strict = AnalyzerSettings(emphysema_laa950_pct=20.0)
    lax = AnalyzerSettings(emphysema_laa950_pct=2.0)
    a = _thin_soft(analyze(chest.volume, strict))
    ps = {r.key: r.probability for r in map_findings(a, strict)}
    qs = {r.key: r.probability for r in map_findings(a, lax)}
    assert ps["emphysema"] < 0.5 < qs["emphysema"]


def test_a_measure_note_that_says_not_assessed_is_not_said_twice() -> None:
    a = analyze(synthetic_chest().volume, AnalyzerSettings())
    measures = dict(a.measures)
    m = measures["pleural_effusion_volume"]
    measures["pleural_effusion_volume"] = dataclasses.replace(
        m, value=None, note="not assessed: the lung bases are outside the field of view")
    results = map_findings(dataclasses.replace(a, measures=measures), AnalyzerSettings())
    eff = next(r for r in results if r.key == "pleural_effusion")
    assert eff.probability is None
    assert eff.note == "not assessed: the lung bases are outside the field of view"

