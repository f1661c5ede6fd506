"""A tiny synthetic chest CT written as DICOM, and StudyResults built by hand on it.

Small on purpose (96 x 96 x 24) so every sr_writer test runs in seconds. The
geometry is a standard head-first-supine axial stack (rows along +P, columns
along +L), so laterality and orientation markers have known answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import CTImageStorage, generate_uid

from inference.types import (
    Evidence,
    FindingResult,
    Measurement,
    ModelStatus,
    ProcessingStatus,
    StudyResult,
)
from series_selector.types import HUVolume, RuleResult, SelectionReport, SeriesDecision, Verdict
from tests.helpers import ct_slice

ROWS = COLS = 96
SLICES = 28  # 135 mm: enough coverage for series selection (120 mm)
PIXEL_MM = 3.5
STEP_MM = 5.0
ORIGIN = (-168.0, -168.0, -300.0)  # LPS of voxel [0, 0, 0]
NODULE = (12, 48, 30)  # z, y, x voxel: patient's right lung (low column = right)
NODULE_RADIUS = 3  # voxels


@dataclass(frozen=True)
class SyntheticStudy:
    paths: tuple[Path, ...]
    volume: HUVolume
    study_uid: str
    series_uid: str


def phantom_voxels() -> np.ndarray:
    """Body ellipse (40 HU), two lungs (-850 HU), a nodule in the right lung (30 HU)."""
    z, y, x = np.mgrid[0:SLICES, 0:ROWS, 0:COLS]
    vox = np.full((SLICES, ROWS, COLS), -1000, dtype=np.int16)
    body = ((y - 48) / 38.0) ** 2 + ((x - 48) / 44.0) ** 2 <= 1
    vox[body] = 40
    right = ((y - 46) / 26.0) ** 2 + ((x - 30) / 14.0) ** 2 <= 1
    left = ((y - 46) / 26.0) ** 2 + ((x - 66) / 14.0) ** 2 <= 1
    vox[right | left] = -850
    zc, yc, xc = NODULE
    vox[(z - zc) ** 2 + (y - yc) ** 2 + (x - xc) ** 2 <= NODULE_RADIUS ** 2] = 30
    return vox


def write_study(
    folder: Path,
    *,
    patient_name: str = "Test^Patient",
    charset: str = "ISO_IR 100",
    seed: str = "sr-writer-test",
) -> SyntheticStudy:
    """Write the phantom as a CT series (one file per slice) and return its HUVolume."""
    folder.mkdir(parents=True, exist_ok=True)
    study_uid = generate_uid(entropy_srcs=[seed, "study"])
    series_uid = generate_uid(entropy_srcs=[seed, "series"])
    frame_uid = generate_uid(entropy_srcs=[seed, "frame"])
    vox = phantom_voxels()
    paths, sops = [], []
    for k in range(SLICES):
        sop = generate_uid(entropy_srcs=[seed, "sop", str(k)])
        ds = ct_slice(
            vox[k], study_uid=study_uid, series_uid=series_uid, frame_uid=frame_uid,
            instance_number=k + 1, series_number=2,
            position=[ORIGIN[0], ORIGIN[1], ORIGIN[2] + k * STEP_MM], pixel_mm=PIXEL_MM,
            thickness_mm=STEP_MM, sop_uid=sop, rescale_intercept=-1024,
            SpecificCharacterSet=charset, StudyTime="101500",
            SeriesDate="20260101", SeriesTime="101600",
            ContentDate="20260101", ContentTime="101600",
            AccessionNumber="ACC123", Manufacturer="Synthetic", StudyDescription="Chest",
            SeriesDescription="synthetic chest 5 mm", PatientName=patient_name,
            PatientID="SYN0001", PatientSex="M", BodyPartExamined="CHEST",
            PatientPosition="HFS", ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
            PositionReferenceIndicator="", RescaleType="HU",
        )
        path = folder / f"CT{k + 1:03d}.dcm"
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        paths.append(path)
        sops.append(sop)
    volume = HUVolume(
        voxels=vox,
        spacing=(PIXEL_MM, PIXEL_MM, STEP_MM),
        origin=ORIGIN,
        direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
        study_uid=study_uid,
        series_uid=series_uid,
        frame_of_reference_uid=frame_uid,
        slice_sop_instance_uids=tuple(sops),
        source_paths=tuple(paths),
        sop_class_uid=CTImageStorage,
        slice_thickness_mm=STEP_MM,
    )
    return SyntheticStudy(tuple(paths), volume, study_uid, series_uid)


MODELS = (
    ModelStatus("lung_quant", "1.2.0", True, ("emphysema", "lung_nodule", "pleural_effusion")),
    ModelStatus("ctfm_probe", "0.3.1", False, ()),
)


def selection_for(study: SyntheticStudy) -> SelectionReport:
    decision = SeriesDecision(
        series_uid=study.series_uid, description="synthetic chest 5 mm", n_instances=SLICES,
        modality="CT", slice_thickness_mm=STEP_MM, coverage_mm=(SLICES - 1) * STEP_MM,
        convolution_kernel="", accepted=True, rank=1, series_number=2,
        results=(RuleResult("thickness", Verdict.WARN, "thick_series",
                            "5 mm slices are thick: small nodules may be missed"),),
    )
    return SelectionReport(study.study_uid, (decision,), study.series_uid,
                           explanation="series 2 (synthetic chest 5 mm) chosen: only series; "
                           "5 mm slices are thick")


def nodule_evidence(volume: HUVolume) -> Evidence:
    zc, yc, xc = NODULE
    r = NODULE_RADIUS
    z, y, x = np.mgrid[-r:r + 1, -r:r + 1, -r:r + 1]
    mask = z ** 2 + y ** 2 + x ** 2 <= r ** 2
    return Evidence(
        description="solid nodule", slice_index=zc, center_lps=volume.index_to_lps(zc, yc, xc),
        volume_ml=float(mask.sum()) * volume.voxel_volume_ml, diameter_mm=2 * r * PIXEL_MM,
        bbox=(zc - r, yc - r, xc - r, zc + r + 1, yc + r + 1, xc + r + 1), mask=mask,
    )


def success_with_lesions(study: SyntheticStudy) -> StudyResult:
    """Two findings with evidence (nodule right lung with mask, effusion left without)."""
    v = study.volume
    effusion = Evidence(description="dependent fluid", slice_index=16,
                        center_lps=v.index_to_lps(16, 70, 70), volume_ml=120.5)
    findings = (
        FindingResult("lung_nodule", 0.91, (Measurement("nodule_count", 1, "1", "nodules"),),
                      (nodule_evidence(v),)),
        FindingResult("pleural_effusion", 0.74, (), (effusion,)),
        FindingResult("emphysema", 0.32, (Measurement("LAA-950", 7.2, "%", "emphysema index"),)),
        FindingResult("cardiomegaly", 0.05),
        FindingResult("pneumothorax", None, note="model not installed"),
    )
    return StudyResult(
        ProcessingStatus.SUCCESS, study_uid=study.study_uid, series_uid=study.series_uid,
        probability=0.93, decision=1, findings=findings,
        top_pathologies=("Lung nodule", "Pleural effusion", "Emphysema"),
        most_dangerous_key="pleural_effusion", selection=selection_for(study), models=MODELS,
        seconds=1.5, volume=v,
    )


def success_nothing_found(study: SyntheticStudy) -> StudyResult:
    findings = (
        FindingResult("lung_nodule", 0.04),
        FindingResult("emphysema", 0.11, (Measurement("LAA-950", 1.1, "%", "emphysema index"),)),
        FindingResult("pleural_effusion", 0.02),
    )
    return StudyResult(
        ProcessingStatus.SUCCESS, study_uid=study.study_uid, series_uid=study.series_uid,
        probability=0.08, decision=0, findings=findings, top_pathologies=(),
        selection=selection_for(study), models=MODELS, seconds=1.2, volume=study.volume,
    )


def failure(study: SyntheticStudy) -> StudyResult:
    return StudyResult(
        ProcessingStatus.FAILURE, study_uid=study.study_uid, series_uid="",
        error="no series shows lung fields: the study is not a chest CT",
        error_code="not_chest", models=MODELS, seconds=0.4,
    )
