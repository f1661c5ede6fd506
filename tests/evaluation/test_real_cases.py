"""Accuracy floors on the labelled real cases of ../shared/data (skipped when absent).

The reference is parsed from the readers' own files (LIDC-IDRI XML outlines,
Lung-PET-CT-Dx VOC boxes); nothing is copied by hand. A change that loses a
lesion, adds false positives, shrinks masses below 30 mm again or calls
iodinated contrast metal fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ctnode.settings import Settings
from evaluation.real import evaluate_real
from evaluation.real_report import summarise_real
from evaluation.types import RealCaseResult
from tests.conftest import cached_default_analysis

pytestmark = [pytest.mark.real_data, pytest.mark.real_analysis]


@pytest.fixture(scope="module")
def real(shared_data: Path) -> dict[str, RealCaseResult]:
    s = Settings()
    results = evaluate_real(shared_data, s.inference.analyzer, s.selection, alternates=False,
                            analyse=cached_default_analysis)
    return {r.name: r for r in results}


def test_every_labelled_case_is_analysed(real: dict[str, RealCaseResult]) -> None:
    assert {"lidc_idri_0001", "lidc_idri_0003", "lungpetctdx_A0001"} <= set(real)
    assert not [r.name for r in real.values() if r.error]


def test_lesions_found_at_the_readers_outlines(real: dict[str, RealCaseResult]) -> None:
    summary = summarise_real(list(real.values()), 0.5)
    at1, _, at3 = summary.levels
    assert at1.n_lesions == 5 and at3.n_lesions == 4
    # Measured: 4 of the 5 lesions have a candidate on them, ranked above every false
    # positive (FROC 80 % from 1/8 FP per scan; the missed one is a 13 mm nodule against
    # the anterior chest wall of LIDC 0003, solid on only two 2.5 mm slices: its inscribed
    # ball is 5 mm, and its own in-plane body fills the isolation shell, so it scores as
    # a vessel); all 4 reach p >= 0.5 (issue 13: the vessel calibre term of nodules.py);
    # no false positive there.
    assert at1.froc_sensitivity[3] >= 0.8 and at3.froc_sensitivity[3] >= 0.75
    assert at1.found >= 4
    assert at1.fp_per_scan <= 1.0
    for name in ("lidc_idri_0001", "lungpetctdx_A0001"):
        assert all(o.hit is not None for o in real[name].outcomes), name


def test_every_hit_lesion_is_called(real: dict[str, RealCaseResult]) -> None:
    for r in real.values():
        for o in r.outcomes:
            assert o.hit is None or o.hit.score >= 0.5, (r.name, o.truth.lesion_id)


def test_readers_masses_are_masses(real: dict[str, RealCaseResult]) -> None:
    """Lesions the readers measure >= 30 mm have a candidate on them, are called,
    measured within 5 mm of the readers' long axis and are masses. Part-solid ones
    (LIDC texture < 4.5) included: they are measured whole, ground glass and all
    (issue 13; LIDC 0003's mass, 25 mm on its solid part alone)."""
    part_solid = 0
    for name in ("lidc_idri_0001", "lidc_idri_0003"):
        r = real[name]
        big = [o for o in r.outcomes if o.truth.n_readers >= 3 and o.truth.diameter_mm >= 30.0]
        assert big, name
        for o in big:
            assert o.hit is not None, (name, o.truth.lesion_id)
            part_solid += (o.truth.texture or 0.0) < 4.5
            assert o.hit.score >= 0.5, (name, o.hit)
            assert abs(o.hit.long_axis_mm - o.truth.diameter_mm) <= 5.0, (name, o.hit)
            assert o.hit.long_axis_mm >= 30.0, (name, o.hit)
            assert (r.probabilities["lung_mass"] or 0.0) >= 0.5, name
    assert part_solid >= 1


def test_diameters_follow_the_readers(real: dict[str, RealCaseResult]) -> None:
    summary = summarise_real(list(real.values()), 0.5)
    errors = summary.diameter_errors_mm
    assert len(errors) >= 3
    # 2.3 mm before part-solid lesions were measured whole (issue 13), 0.6 mm after.
    assert sum(abs(e) for e in errors) / len(errors) <= 2.3


def test_contrast_is_not_metal(real: dict[str, RealCaseResult]) -> None:
    """LIDC 0001 and 0003 are contrast studies without devices."""
    for name in ("lidc_idri_0001", "lidc_idri_0003"):
        p = real[name].probabilities.get("medical_material")
        assert p is None or p < 0.5, (name, p)


def test_emphysema_not_read_on_thick_sections(real: dict[str, RealCaseResult]) -> None:
    """A0001 has 5 mm sections: LAA%-950 is outside its validity, so no number."""
    r = real["lungpetctdx_A0001"]
    assert r.probabilities["emphysema"] is None
    assert "mm sections" in r.notes["emphysema"]
