"""Reading one of our SRs back with highdicom: for round-trip tests and for consumers.

Uses only highdicom's TID 1500 accessors (``srread``, measurement groups), so a
content item highdicom cannot see (e.g. a qualitative evaluation named like the
finding-type row) shows up as missing here, as it would for any other reader.
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
from highdicom.sr.utils import find_content_items

from sr_writer import codes
from sr_writer.types import LesionReadBack, ReportReadBack


def _same(a: object, b: object) -> bool:
    return bool(a == b)


def _texts(group: hd.sr.MeasurementsAndQualitativeEvaluations) -> list[str]:
    items = find_content_items(group[0], name=codes.COMMENT,
                               value_type=hd.sr.ValueTypeValues.TEXT)
    return [str(item.TextValue) for item in items]


def read_back(sr_path: Path) -> ReportReadBack:
    """What an SR written by ``sr_writer`` says, as recovered by highdicom's reader."""
    sr = hd.sr.srread(sr_path)
    report = sr.content
    if not isinstance(report, hd.sr.MeasurementReport):
        raise ValueError(f"{sr_path.name} is not a TID 1500 Measurement Report")
    groups = list(report.get_image_measurement_groups())
    planar = list(report.get_planar_roi_measurement_groups())
    overall_probability: float | None = None
    decision: int | None = None
    succeeded = True
    findings: dict[str, float] = {}
    present: dict[str, bool] = {}
    measurements: dict[str, dict[str, float]] = {}
    comments: list[str] = []
    lesions: list[LesionReadBack] = []

    for group in groups:
        comments += _texts(group)
        for evaluation in group.get_qualitative_evaluations(codes.CAD_SUMMARY):
            succeeded = not _same(evaluation.value, codes.CAD_FAILED)
        key = codes.finding_key_for(group.finding_type)
        probability = group.get_measurements(codes.PROBABILITY)
        if key is None:
            if probability:
                overall_probability = float(probability[0].value)
            for evaluation in group.get_qualitative_evaluations(codes.ABNORMAL):
                decision = 1 if _same(evaluation.value, codes.PRESENT) else 0
            continue
        if probability:  # the finding-level group
            findings[key] = float(probability[0].value)
            for evaluation in group.get_qualitative_evaluations(codes.finding_concept(key)):
                present[key] = _same(evaluation.value, codes.PRESENT)
            measurements[key] = {
                m.name.value: float(m.value) for m in group.get_measurements()
                if not _same(m.name, codes.PROBABILITY)
            }
        else:  # a lesion group without a frame of reference
            lesions.append(_lesion(key, group, None))

    for roi_group in planar:
        key = codes.finding_key_for(roi_group.finding_type)
        if key is None:
            continue
        roi = roi_group.roi
        point = None
        if isinstance(roi, hd.sr.ImageRegion3D):
            x, y, z = (float(v) for v in roi.value[0])
            point = (x, y, z)
        lesions.append(_lesion(key, roi_group, point))

    return ReportReadBack(
        sop_instance_uid=str(sr.SOPInstanceUID),
        study_instance_uid=str(sr.StudyInstanceUID),
        processing_succeeded=succeeded,
        overall_probability=overall_probability,
        decision=decision,
        findings=findings,
        present=present,
        measurements=measurements,
        lesions=tuple(lesions),
        comments=tuple(comments),
    )


def _lesion(
    key: str,
    group: (hd.sr.MeasurementsAndQualitativeEvaluations
            | hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations),
    point: tuple[float, float, float] | None,
) -> LesionReadBack:
    side = None
    for site in group.finding_sites:
        if site.laterality is not None:
            side = "left" if _same(site.laterality, codes.LEFT) else (
                "right" if _same(site.laterality, codes.RIGHT) else None)
    diameter = group.get_measurements(codes.DIAMETER)
    volume = group.get_measurements(codes.VOLUME)
    return LesionReadBack(
        finding_key=key,
        tracking_identifier=group.tracking_identifier or "",
        point_lps=point,
        diameter_mm=float(diameter[0].value) if diameter else None,
        volume_ml=float(volume[0].value) if volume else None,
        laterality=side,
    )


def read_back_findings(sr_path: Path) -> dict[str, float]:
    """Finding key -> probability for every finding the SR reports as assessed."""
    return read_back(sr_path).findings
