"""The real Lung-PET-CT-Dx study (TCIA, CC BY 4.0): our objects join it without errors.

The result is built by hand at the annotated tumour (the models are not what
is tested here): this checks identity copying from a real vendor header,
the dropped incomplete Referenced Study Sequence (DICOM-NOTES), and
rendering a real 512 x 512 slice.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pydicom
import pytest

from ctnode.settings import OutputSettings, SelectionSettings
from inference.findings import FINDINGS
from inference.types import Evidence, FindingResult, ProcessingStatus, StudyResult
from series_selector import index_path, load_volume, select_series
from series_selector.types import HUVolume
from sr_writer import read_back, write_result_objects
from tests.sr_writer.synthetic import MODELS
from tests.sr_writer.validators import dciodvfy, dsrdump

pytestmark = pytest.mark.real_data

# Warnings dciodvfy gives for the source study itself (copied unchanged, as we must):
SOURCE_WARNINGS = ("Study ID", "Retired Person Name form")


@pytest.fixture(scope="module")
def kernel_b(shared_data: Path) -> tuple[Path, HUVolume]:
    folder = shared_data / "lungpetctdx_A0001" / "series_kernel_B"
    if not folder.is_dir():
        pytest.skip("lungpetctdx_A0001/series_kernel_B is absent")
    index = index_path(folder)
    volume = load_volume(index, select_series(index, SelectionSettings()))
    return shared_data / "lungpetctdx_A0001" / "annotations", volume


def _tumour(annotations: Path, volume: HUVolume) -> Evidence:
    """Evidence at the middle annotated slice of this series (VOC box -> centre, size)."""
    boxes = []
    for z, uid in enumerate(volume.slice_sop_instance_uids):
        xml = annotations / f"{uid}.xml"
        if xml.is_file():
            box = ET.parse(xml).getroot().find("object/bndbox")
            assert box is not None
            boxes.append((z, *(float(box.findtext(k) or 0) for k in
                                ("xmin", "ymin", "xmax", "ymax"))))
    assert boxes, "no annotation matches a slice of series B"
    z, x0, y0, x1, y1 = boxes[len(boxes) // 2]
    sx, sy, _ = volume.spacing
    return Evidence(
        description="annotated adenocarcinoma", slice_index=z,
        center_lps=volume.index_to_lps(z, (y0 + y1) / 2, (x0 + x1) / 2),
        diameter_mm=max((x1 - x0) * sx, (y1 - y0) * sy),
    )


def test_real_study_objects_validate(kernel_b: tuple[Path, HUVolume], tmp_path: Path) -> None:
    annotations, volume = kernel_b
    tumour = _tumour(annotations, volume)
    result = StudyResult(
        ProcessingStatus.SUCCESS, study_uid=volume.study_uid, series_uid=volume.series_uid,
        probability=0.97, decision=1,
        findings=(FindingResult("lung_mass", 0.95, (), (tumour,)),
                  FindingResult("lung_nodule", 0.40), FindingResult("emphysema", 0.12)),
        top_pathologies=("Lung mass",), most_dangerous_key="lung_mass", models=MODELS,
        volume=volume,
    )
    written = write_result_objects(result, tmp_path, OutputSettings())
    assert written.sr_path is not None and len(written.sc_paths) == 2
    for path in written.dicom_paths:
        report = dciodvfy(path)
        assert report.errors == (), (path.name, report.errors)
        unexplained = [w for w in report.warnings if not any(s in w for s in SOURCE_WARNINGS)]
        assert unexplained == [], unexplained
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert "ReferencedStudySequence" not in ds  # the source's item is incomplete
        assert ds.StudyInstanceUID == volume.study_uid
    assert FINDINGS["lung_mass"].concept.meaning in dsrdump(written.sr_path)
    back = read_back(written.sr_path)
    assert back.findings == pytest.approx({"lung_mass": 0.95, "lung_nodule": 0.40,
                                           "emphysema": 0.12})
    assert len(back.not_assessed) == 19
    (lesion,) = back.lesions
    assert lesion.tracking_identifier == "Lung mass 1" and lesion.probability == pytest.approx(0.95)
    # a circle of the tumour's diameter on its key slice: centre then a point on the rim
    assert lesion.graphic_type == "CIRCLE"
    assert lesion.referenced_sop_instance_uid == volume.slice_sop_instance_uids[
        tumour.slice_index]
    (cx, cy), (ex, _) = lesion.image_points
    z, y, x = _pixel_of(volume, tumour)
    assert (cx, cy) == pytest.approx((x + 0.5, y + 0.5), abs=0.1)
    assert (ex - cx) * volume.spacing[0] == pytest.approx(tumour.diameter_mm / 2, abs=0.2)
    # the tumour is in the patient's left lower lobe (image right, +x in LPS)
    assert tumour.center_lps[0] > 0
    assert lesion.laterality == "left"


def _pixel_of(volume: HUVolume, evidence: Evidence) -> tuple[float, float, float]:
    from sr_writer.render import lps_to_index

    return lps_to_index(volume, evidence.center_lps)
