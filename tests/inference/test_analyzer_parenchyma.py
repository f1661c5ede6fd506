"""Density measures: lung volume, LAA%-950, ground glass and consolidation."""

from __future__ import annotations

import numpy as np
import pytest

from ctnode.settings import AnalyzerSettings
from inference.analyzer import analyze
from inference.analyzer.parenchyma import HIST_MIN, lung_histogram
from tests.inference.analyzer_synth import synthetic_chest


def test_histogram_counts_every_lung_voxel_at_full_resolution() -> None:
    chest = synthetic_chest()
    a = analyze(chest.volume, AnalyzerSettings())
    hist = lung_histogram(a.grid, a.anatomy.lungs)
    f = a.grid.factors
    assert hist.sum() == a.anatomy.lungs.sum() * f[0] * f[1] * f[2]
    assert np.argmax(hist) + HIST_MIN == pytest.approx(-860, abs=15)


@pytest.mark.parametrize("fraction", [0.0, 0.08, 0.2])
def test_laa950_matches_truth(fraction: float) -> None:
    chest = synthetic_chest(emphysema_fraction=fraction, seed=3)
    a = analyze(chest.volume, AnalyzerSettings())
    assert a.value("laa950") == pytest.approx(chest.truth["laa950"], abs=0.5)
    assert a.value("lung_volume") == pytest.approx(chest.truth["lung_volume"], rel=0.05)


def test_normal_lung_has_no_opacity() -> None:
    a = analyze(synthetic_chest().volume, AnalyzerSettings())
    assert a.value("opacity_fraction") == pytest.approx(0.0, abs=0.05)
    assert a.value("consolidation_largest") == 0.0


def test_ground_glass_volume_and_location() -> None:
    chest = synthetic_chest(ggo_radius_mm=25)
    a = analyze(chest.volume, AnalyzerSettings())
    assert a.value("ggo_volume") == pytest.approx(chest.truth["ggo_ml"], rel=0.25)
    assert a.value("ggo_fraction_right") > 3 * a.value("ggo_fraction_left")
    ev = a.measures["opacity_largest"].evidence[0]
    assert ev.center_lps[0] < 0  # patient right is -x in LPS
    assert ev.mask is not None and ev.mask.any()


def test_consolidation_volume() -> None:
    chest = synthetic_chest(consolidation_radius_mm=20)
    a = analyze(chest.volume, AnalyzerSettings())
    assert a.value("consolidation_largest") == pytest.approx(
        chest.truth["consolidation_ml"], rel=0.3)
    assert a.value("consolidation_fraction_left") > a.value("consolidation_fraction_right")
