"""The preset evaluation (``evaluation.presets``): one preset run for real, and the table."""

from __future__ import annotations

import pytest

from ctnode.settings import AnalyzerSettings
from evaluation.presets import PresetResult, run_preset, table

pytest.importorskip("phantom")


def test_a_preset_is_scored_on_its_own_finding() -> None:
    """The issue-12 effusion miss, on the preset path: a right effusion alone is found."""
    r = run_preset("effusion", 128, AnalyzerSettings())
    assert r.finding == "pleural_effusion"
    assert r.probability is not None and r.probability >= 0.5


def test_the_nodule_preset_is_found_on_a_512_matrix() -> None:
    """Issue 12: on the 2.2 mm work grid of a 512 x 512 scan (0.74 mm pixels) the 10 mm
    nodule read as a vessel junction (0.36); its isolation is now measured on the
    scanner's own pixels (``nodules.fine_isolation``)."""
    r = run_preset("nodule", 512, AnalyzerSettings())
    assert r.probability is not None and r.probability >= 0.5


def test_table_lists_the_misses_per_matrix() -> None:
    rows = [PresetResult("nodule", "lung_nodule", 160, 0.95),
            PresetResult("nodule", "lung_nodule", 256, 0.30),
            PresetResult("mass", "lung_mass", 160, None)]
    text = table(rows, [160, 256])
    assert "| nodule | lung_nodule | 0.95 | 0.30 |" in text
    assert "| mass | lung_mass | - | - |" in text
    assert "missed at 160: mass" in text and "missed at 256: nodule" in text
