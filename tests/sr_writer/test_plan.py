"""What the SR and SC list: no contradictions, no whole-organ lesions, no duplicates."""

from __future__ import annotations

import dataclasses

import pytest

from inference.findings import FINDING_KEYS
from inference.types import Evidence, FindingResult
from sr_writer.plan import image_conditions_text, not_assessed_reason, report_plan
from tests.sr_writer.synthetic import SyntheticStudy, success_with_lesions


def _with(study: SyntheticStudy, *findings: FindingResult):  # type: ignore[no-untyped-def]
    return dataclasses.replace(success_with_lesions(study), findings=findings)


def test_every_finding_once_in_reading_order(study: SyntheticStudy) -> None:
    plan = report_plan(success_with_lesions(study), 0.5, 6)
    keys = [f.key for f in plan.present] + [f.key for f in plan.absent] + [
        n.key for n in plan.not_assessed]
    assert sorted(keys) == sorted(FINDING_KEYS)
    assert [f.key for f in plan.present] == ["lung_nodule", "pleural_effusion"]  # p 0.91, 0.74


def test_no_lesions_under_absent_or_sub_threshold_and_no_duplicates(
    study: SyntheticStudy,
) -> None:
    v = study.volume
    here = Evidence("nodule candidate 12 x 10 mm, 30 HU, score 0.91", 12,
                    v.index_to_lps(12, 48, 30), volume_ml=1.0, diameter_mm=11.0)
    weak = Evidence("nodule candidate 5 x 4 mm, -20 HU, score 0.21", 14,
                    v.index_to_lps(14, 40, 60), volume_ml=0.1, diameter_mm=4.5)
    heart = Evidence("heart (mediastinal soft tissue)", 15, v.index_to_lps(15, 50, 48),
                     volume_ml=616.0)
    aorta = Evidence("aorta (approximate)", 10, v.index_to_lps(10, 40, 48), volume_ml=31.3)
    result = _with(
        study,
        FindingResult("lung_nodule", 0.91, evidence=(here, weak, here)),  # same one twice
        FindingResult("lung_mass", 0.30, evidence=(here,)),  # absent: its candidate is no lesion
        FindingResult("cardiomegaly", 0.95, evidence=(heart,)),  # present, but the heart itself
        FindingResult("thoracic_aortic_dilatation", 0.9, evidence=(aorta, aorta)),
    )
    plan = report_plan(result, 0.5, 6)
    assert [le.label for le in plan.lesions] == ["Lung nodule 1"]
    assert plan.lesions[0].probability == pytest.approx(0.91)  # its own score


def test_key_images_are_limited_and_counted(study: SyntheticStudy) -> None:
    plan = report_plan(success_with_lesions(study), 0.5, 1)
    assert [le.label for le in plan.key_images] == ["Lung nodule 1"]
    assert plan.key_images_left_out == 1


def test_reasons_are_said_once() -> None:
    finding = FindingResult("cardiomegaly", None, note="not assessed: thorax cut by the border; "
                            "not assessed: thorax cut by the border")
    assert not_assessed_reason(finding) == "thorax cut by the border"


def test_image_conditions_when_the_result_has_them(study: SyntheticStudy) -> None:
    types = pytest.importorskip("inference.types")
    if not hasattr(types, "ImageConditions"):
        pytest.skip("this StudyResult carries no image conditions")
    image = types.ImageConditions(contrast_phase="non_contrast", kernel_class="soft",
                                  noise_hu=12.6, lungs_truncated=("left lateral",))
    result = dataclasses.replace(success_with_lesions(study), image=image)
    assert image_conditions_text(result) == (
        "Image: contrast phase non-contrast; soft kernel; noise 13 HU; "
        "lungs cut by the image border: left lateral.")
    assert image_conditions_text(success_with_lesions(study)) == ""
