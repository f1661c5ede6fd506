"""Each selection rule, positive and negative, on headers built in memory."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ctnode.settings import SelectionSettings
from series_selector import anatomy, rules
from series_selector.geometry import stack_geometry
from series_selector.grouping import group_stacks
from series_selector.ranking import KernelFamily, kernel_family
from series_selector.types import DicomIndex, InstanceHeader, Verdict

S = SelectionSettings()


def _facts(n: int = 40, step: float = 2.0, skip: tuple[int, ...] = (), tilt: float = 0.0,
           per_slice: dict[int, dict[str, Any]] | None = None, **kw: Any) -> rules.StackFacts:
    headers = []
    shear = math.tan(math.radians(tilt))
    for k in range(n):
        if k in skip:
            continue
        fields: dict[str, Any] = dict(
            path=Path(f"/in/{k}"), study_uid="1.2", series_uid="1.2.3",
            sop_instance_uid=f"1.2.3.{k}", sop_class_uid=rules.CT_IMAGE_STORAGE, modality="CT",
            transfer_syntax_uid="1.2.840.10008.1.2.1", image_type=("ORIGINAL", "PRIMARY", "AXIAL"),
            instance_number=k + 1, image_position=(-200.0, -200.0 + k * step * shear, k * step),
            image_orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0), pixel_spacing=(0.7, 0.7),
            slice_thickness=step, rows=512, columns=512, convolution_kernel="B30f")
        fields.update(kw)
        fields.update((per_slice or {}).get(k, {}))
        headers.append(InstanceHeader(**fields))
    (stack,) = group_stacks(DicomIndex(tuple(headers)))
    return rules.StackFacts(stack, stack_geometry(stack, S.spacing_gap_factor,
                                                  S.spacing_tolerance))


def _check(rule: rules.Rule, facts: rules.StackFacts, verdict: Verdict, code: str) -> str:
    result = rule(facts, S)
    assert (result.verdict, result.code) == (verdict, code), result
    return result.reason


def test_modality() -> None:
    _check(rules.rule_modality, _facts(), Verdict.PASS, "modality_ct")
    assert "modality MR" in _check(rules.rule_modality, _facts(modality="MR"), Verdict.FAIL,
                                   "modality_not_ct")


@pytest.mark.parametrize(("uid", "verdict", "code"), [
    ("1.2.840.10008.5.1.4.1.1.2", Verdict.PASS, "ct_image_storage"),
    ("1.2.840.10008.5.1.4.1.1.2.1", Verdict.PASS, "ct_image_storage"),
    ("1.2.840.10008.5.1.4.1.1.7", Verdict.FAIL, "secondary_capture"),
    ("1.2.840.10008.5.1.4.1.1.88.67", Verdict.FAIL, "dose_report"),
    ("1.2.840.10008.5.1.4.1.1.88.22", Verdict.FAIL, "dose_report"),
    ("1.2.840.10008.5.1.4.1.1.88.33", Verdict.FAIL, "structured_report"),
    ("1.2.840.10008.5.1.4.1.1.4", Verdict.FAIL, "unsupported_sop_class"),
])
def test_sop_class(uid: str, verdict: Verdict, code: str) -> None:
    _check(rules.rule_sop_class, _facts(n=2, sop_class_uid=uid), verdict, code)


@pytest.mark.parametrize(("image_type", "verdict", "code"), [
    (("ORIGINAL", "PRIMARY", "AXIAL"), Verdict.PASS, "original"),
    (("ORIGINAL", "PRIMARY", "LOCALIZER"), Verdict.FAIL, "localizer"),
    (("DERIVED", "SECONDARY", "MIP"), Verdict.FAIL, "projection"),
    (("DERIVED", "SECONDARY", "MPR"), Verdict.WARN, "derived"),
    ((), Verdict.PASS, "image_type_unknown"),
])
def test_image_type(image_type: tuple[str, ...], verdict: Verdict, code: str) -> None:
    _check(rules.rule_image_type, _facts(n=2, image_type=image_type), verdict, code)


def test_geometry_present() -> None:
    _check(rules.rule_geometry_present, _facts(n=3), Verdict.PASS, "geometry_present")
    facts = _facts(n=3, image_position=None)
    assert facts.geometry is None
    _check(rules.rule_geometry_present, facts, Verdict.FAIL, "no_geometry")


def test_axial() -> None:
    _check(rules.rule_axial, _facts(), Verdict.PASS, "axial")
    sagittal = _facts(image_orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0))
    assert "is sagittal" in _check(rules.rule_axial, sagittal, Verdict.FAIL, "not_axial")
    c, s = math.cos(math.radians(8)), math.sin(math.radians(8))  # within 10 degrees
    _check(rules.rule_axial, _facts(image_orientation=(1.0, 0.0, 0.0, 0.0, c, s)), Verdict.PASS,
           "axial")
    c, s = math.cos(math.radians(20)), math.sin(math.radians(20))
    _check(rules.rule_axial, _facts(image_orientation=(1.0, 0.0, 0.0, 0.0, c, s)), Verdict.FAIL,
           "not_axial")


def test_consistency() -> None:
    _check(rules.rule_consistency, _facts(), Verdict.PASS, "consistent")
    odd = _facts(per_slice={5: {"rows": 256, "columns": 256}})
    assert "image size varies" in _check(rules.rule_consistency, odd, Verdict.FAIL,
                                         "inconsistent_geometry")
    odd = _facts(per_slice={5: {"pixel_spacing": (0.9, 0.9)}})
    assert "pixel spacing varies" in _check(rules.rule_consistency, odd, Verdict.FAIL,
                                            "inconsistent_geometry")
    # the tolerance is np.allclose(atol=1e-3): within passes, beyond fails
    _check(rules.rule_consistency, _facts(per_slice={7: {"pixel_spacing": (0.7009, 0.7)}}),
           Verdict.PASS, "consistent")
    odd = _facts(per_slice={7: {"pixel_spacing": (0.7, 0.702)}})
    assert "pixel spacing varies" in _check(rules.rule_consistency, odd, Verdict.FAIL,
                                            "inconsistent_geometry")
    odd = _facts(per_slice={3: {"pixel_spacing": None}})
    assert "pixel spacing missing" in _check(rules.rule_consistency, odd, Verdict.FAIL,
                                             "inconsistent_geometry")
    odd = _facts(per_slice={9: {"image_orientation": (1.0, 0.0, 0.0, 0.0, 0.9999, 0.003)}})
    assert "orientation varies" in _check(rules.rule_consistency, odd, Verdict.FAIL,
                                          "inconsistent_geometry")
    odd = _facts(per_slice={2: {"pixel_spacing": (0.9, 0.9)}, 4: {"rows": 256}})
    assert "pixel spacing varies" in _check(rules.rule_consistency, odd, Verdict.FAIL,
                                            "inconsistent_geometry")  # the first difference


def test_slice_thickness() -> None:
    _check(rules.rule_slice_thickness, _facts(step=1.0), Verdict.PASS, "thin")
    assert "thick for nodule detection" in _check(rules.rule_slice_thickness, _facts(step=5.0),
                                                  Verdict.WARN, "thick")
    _check(rules.rule_slice_thickness, _facts(step=5.0, slice_thickness=7.0), Verdict.FAIL,
           "too_thick")


def test_slice_spacing() -> None:
    _check(rules.rule_slice_spacing, _facts(step=2.0), Verdict.PASS, "spacing_ok")
    _check(rules.rule_slice_spacing, _facts(step=10.0, slice_thickness=1.0), Verdict.FAIL,
           "spacing_too_large")
    _check(rules.rule_slice_spacing, _facts(step=4.0, slice_thickness=1.0), Verdict.WARN,
           "non_contiguous")


def test_slice_count_and_coverage() -> None:
    _check(rules.rule_slice_count, _facts(n=20), Verdict.PASS, "enough_slices")
    _check(rules.rule_slice_count, _facts(n=19), Verdict.FAIL, "too_few_slices")
    _check(rules.rule_coverage, _facts(n=61, step=2.0), Verdict.PASS, "coverage_ok")
    assert "covers only 118 mm" in _check(rules.rule_coverage, _facts(n=60, step=2.0),
                                          Verdict.FAIL, "coverage_too_short")


def test_uniform_spacing_names_the_gap() -> None:
    _check(rules.rule_uniform_spacing, _facts(), Verdict.PASS, "uniform")
    reason = _check(rules.rule_uniform_spacing, _facts(skip=(10, 11)), Verdict.FAIL,
                    "missing_slices")
    assert "2 missing between z=18.0 and z=24.0 mm (instance 10 and instance 13)" in reason
    jitter = _facts(per_slice={7: {"image_position": (-200.0, -200.0, 14.5)}})
    _check(rules.rule_uniform_spacing, jitter, Verdict.WARN, "irregular_spacing")


def test_duplicates() -> None:
    _check(rules.rule_duplicates, _facts(), Verdict.PASS, "no_duplicates")
    dup = _facts(per_slice={7: {"image_position": (-200.0, -200.0, 12.0)}})
    _check(rules.rule_duplicates, dup, Verdict.FAIL, "duplicate_positions")
    facts = _facts()
    copied = replace(facts, stack=replace(facts.stack, duplicates_dropped=2))
    _check(rules.rule_duplicates, copied, Verdict.WARN, "duplicate_instances")


def test_gantry_tilt() -> None:
    _check(rules.rule_gantry_tilt, _facts(), Verdict.PASS, "no_tilt")
    _check(rules.rule_gantry_tilt, _facts(tilt=12.0, gantry_tilt=12.0), Verdict.WARN,
           "tilt_corrected")
    _check(rules.rule_gantry_tilt, _facts(tilt=35.0, gantry_tilt=35.0), Verdict.FAIL,
           "tilt_too_large")


def test_identifiers() -> None:
    _check(rules.rule_identifiers, _facts(n=2), Verdict.PASS, "uids_present")
    _check(rules.rule_identifiers, _facts(n=2, missing_uids=("StudyInstanceUID",)), Verdict.WARN,
           "missing_uids")


def test_gate_failure_skips_geometry_rules() -> None:
    failed = rules.apply_rules(_facts(modality="MR"), S)
    assert len(failed) == len(rules.GATE_RULES)
    assert "orientation" not in {r.rule for r in failed}
    passed = rules.apply_rules(_facts(), S)
    assert len(passed) == len(rules.GATE_RULES) + len(rules.GEOMETRY_RULES)


@pytest.mark.parametrize(("kernel", "family"), [
    ("B30f", KernelFamily.SOFT), ("Br38f", KernelFamily.SOFT), ("I70f", KernelFamily.SHARP),
    ("Bl57d", KernelFamily.SHARP), ("STANDARD", KernelFamily.SOFT), ("LUNG", KernelFamily.SHARP),
    ("BONEPLUS", KernelFamily.SHARP), ("B", KernelFamily.SOFT), ("L", KernelFamily.SHARP),
    ("FC08", KernelFamily.SOFT), ("FC52", KernelFamily.SHARP), ("", KernelFamily.UNKNOWN),
    ("XYZ", KernelFamily.UNKNOWN),
])
def test_kernel_family(kernel: str, family: KernelFamily) -> None:
    assert kernel_family(kernel) is family


def _slice(lungs: bool, gas: bool = False, px: float = 1.0) -> np.ndarray:
    n = int(300 / px)
    y, x = (np.mgrid[0:n, 0:n] - n / 2) * px
    img = np.full((n, n), -1000.0)
    img[(x / 140) ** 2 + (y / 100) ** 2 <= 1] = 40.0
    if lungs:
        for cx in (-65, 65):
            img[((x - cx) / 50) ** 2 + (y / 75) ** 2 <= 1] = -850.0
    if gas:
        img[(x - 20) ** 2 + (y - 30) ** 2 <= 35**2] = -1000.0  # bowel gas: pure air
    return img


def test_lung_area_counts_lungs_not_bowel_gas() -> None:
    assert anatomy.lung_area_cm2(_slice(True), 1.0) == pytest.approx(2 * math.pi * 50 * 75 / 100,
                                                                     rel=0.05)
    assert anatomy.lung_area_cm2(_slice(False, gas=True), 1.0) < 5.0


def test_anatomy_judgement() -> None:
    chest = anatomy.survey([_slice(True)] * 10, list(range(0, 300, 30)), (1.0, 1.0), 270.0, S)
    assert anatomy.judge(chest, S).code == "lung_fields"
    belly = anatomy.survey([_slice(False, gas=True)] * 10, list(range(0, 300, 30)), (1.0, 1.0),
                           270.0, S)
    result = anatomy.judge(belly, S)
    assert result.verdict is Verdict.FAIL and result.code == "no_lung_fields"
    bases = anatomy.survey([_slice(True)] * 2 + [_slice(False)] * 8, list(range(0, 300, 30)),
                           (1.0, 1.0), 270.0, S)
    assert anatomy.judge(bases, S).code == "too_little_lung"
