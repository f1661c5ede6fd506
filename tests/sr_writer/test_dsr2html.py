"""What any SR renderer shows (dcmtk dsr2html): labelled values a reader can scan.

Success, Failure and a not-assessed finding, checked for the concept names and
values a radiologist needs, next to each other (SEPARATE continuity).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from ctnode.settings import OutputSettings
from sr_writer import write_result_objects
from tests.sr_writer.synthetic import SyntheticStudy, failure, success_with_lesions
from tests.sr_writer.validators import dsr2html_text


def _follows(text: str, label: str, value: str) -> bool:
    """``value`` is printed right after ``label`` (same row or the next line)."""
    return re.search(re.escape(label) + r"\s*:?\s*\n?\s*" + re.escape(value), text) is not None


def test_success_reads_with_labels(study: SyntheticStudy, tmp_path: Path) -> None:
    written = write_result_objects(success_with_lesions(study), tmp_path, OutputSettings())
    assert written.sr_path is not None
    text = dsr2html_text(written.sr_path)
    assert _follows(text, "CAD Processing and Findings Summary",
                    "All algorithms succeeded; with findings")
    assert _follows(text, "Abnormal", "Present")
    assert _follows(text, "Properties : Probability =", "0.93")
    # the lesion group: its name, own probability, size, and presence
    assert 'Tracking Identifier = "Lung nodule 1"' in text
    assert _follows(text, "Probability", "0.91 1")
    assert _follows(text, "Diameter", "21.0 mm")
    assert _follows(text, "Nodule of lung", "Present")
    assert _follows(text, "Pulmonary emphysema", "Absent")
    assert "Properties : emphysema index = 7.2 %" in text
    assert "Image Region" in text and "Polyline" in text
    assert "0.9100000" not in text and "lung_nodule" not in text  # no raw floats, no keys


def test_not_assessed_finding_says_why(study: SyntheticStudy, tmp_path: Path) -> None:
    written = write_result_objects(success_with_lesions(study), tmp_path, OutputSettings())
    assert written.sr_path is not None
    text = dsr2html_text(written.sr_path)
    assert _follows(text, "Pneumothorax", "Not Evaluated")
    assert "Properties : Comment = \"Not assessed: model not installed\"" in text
    assert _follows(text, "Hiatal hernia", "Not Evaluated")  # never scored by any model


def test_image_conditions_are_said(study: SyntheticStudy, tmp_path: Path) -> None:
    types = pytest.importorskip("inference.types")
    if not hasattr(types, "ImageConditions"):
        pytest.skip("this StudyResult carries no image conditions")
    result = dataclasses.replace(
        success_with_lesions(study),
        image=types.ImageConditions(contrast_phase="arterial", lungs_truncated=("apices",)))
    written = write_result_objects(result, tmp_path, OutputSettings())
    assert written.sr_path is not None
    text = dsr2html_text(written.sr_path)
    assert ("Image: contrast phase arterial; lungs cut by the image border: apices."
            in text)


def test_failure_reads_with_labels(study: SyntheticStudy, tmp_path: Path) -> None:
    written = write_result_objects(failure(study), tmp_path, OutputSettings(),
                                   source_paths=study.paths[:2])
    assert written.sr_path is not None
    text = dsr2html_text(written.sr_path)
    assert _follows(text, "CAD Processing and Findings Summary",
                    "No algorithms succeeded; without findings")
    assert "AI processing failed [not_chest]: no series shows lung fields" in text
    assert "read it without AI support" in text
    assert "Imaging Measurements" not in text  # no empty measurement list
