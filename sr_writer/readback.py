"""Reading one of our SRs back: for round-trip tests and for consumers.

Lesion groups are read with highdicom's TID 1500 accessors (``srread``, planar
and volumetric ROI groups), so a content item highdicom cannot see shows up as
missing here, as it would for any other reader. The Qualitative Evaluations
container (TID 1500 row 14), which highdicom does not parse, is walked item by
item.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import highdicom as hd
from pydicom.dataset import Dataset

from sr_writer import codes
from sr_writer.types import LesionReadBack, ReportReadBack


def _code(item: Dataset, attribute: str = "ConceptNameCodeSequence") -> tuple[str, str]:
    seq = item.get(attribute)
    if not seq:
        return "", ""
    code = seq[0]
    value = code.get("CodeValue") or code.get("LongCodeValue") or code.get("URNCodeValue")
    return str(value), str(code.CodingSchemeDesignator)


def _is(pair: tuple[str, str], concept: Any) -> bool:
    return pair == (str(concept.value), str(concept.scheme_designator))


def _number(item: Dataset) -> float:
    return float(item.MeasuredValueSequence[0].NumericValue)


def _qualitative(sr: Dataset) -> Iterable[Dataset]:
    for item in sr.get("ContentSequence", []):
        if _is(_code(item), codes.QUALITATIVE_EVALUATIONS):
            yield from item.get("ContentSequence", [])


def read_back(sr_path: Path) -> ReportReadBack:
    """What an SR written by ``sr_writer`` says, as recovered by a standard reader."""
    sr = hd.sr.srread(sr_path)
    report = sr.content
    if not isinstance(report, hd.sr.MeasurementReport):
        raise ValueError(f"{sr_path.name} is not a TID 1500 Measurement Report")
    overall_probability: float | None = None
    decision: int | None = None
    succeeded = True
    findings: dict[str, float] = {}
    present: dict[str, bool] = {}
    measurements: dict[str, dict[str, float]] = {}
    not_assessed: dict[str, str] = {}
    comments: list[str] = []
    key_images: list[str] = []

    for item in _qualitative(sr):
        name = _code(item)
        if item.ValueType == "TEXT":
            comments.append(str(item.TextValue))
        elif item.ValueType == "IMAGE":
            key_images.append(str(item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID))
        if item.ValueType != "CODE":
            continue
        value = _code(item, "ConceptCodeSequence")
        children = list(item.get("ContentSequence", []))
        nums = {_code(c): _number(c) for c in children if c.ValueType == "NUM"}
        texts = [str(c.TextValue) for c in children if c.ValueType == "TEXT"]
        key_images += [str(c.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
                       for c in children if c.ValueType == "IMAGE"]
        probability = nums.get((str(codes.PROBABILITY.value), "DCM"))
        if _is(name, codes.CAD_SUMMARY):
            succeeded = not _is(value, codes.CAD_FAILED)
            continue
        if _is(name, codes.ABNORMAL):
            decision = 1 if _is(value, codes.PRESENT) else 0
            overall_probability = probability
            continue
        key = codes.finding_key_for(hd.sr.CodedConcept(name[0], name[1], "-"))
        if key is None:
            continue
        if _is(value, codes.NOT_EVALUATED):
            not_assessed[key] = texts[0] if texts else ""
            continue
        present[key] = _is(value, codes.PRESENT)
        if probability is not None:
            findings[key] = probability
        measurements[key] = {
            code: v for (code, scheme), v in nums.items()
            if (code, scheme) not in {(str(codes.PROBABILITY.value), "DCM"),
                                      (str(codes.THRESHOLD.value), "DCM")}
        }

    groups = [*report.get_planar_roi_measurement_groups(),
              *report.get_volumetric_roi_measurement_groups()]
    lesions = tuple(_lesion(g) for g in groups if codes.finding_key_for(g.finding_type))
    return ReportReadBack(
        sop_instance_uid=str(sr.SOPInstanceUID),
        study_instance_uid=str(sr.StudyInstanceUID),
        processing_succeeded=succeeded,
        overall_probability=overall_probability,
        decision=decision,
        findings=findings,
        present=present,
        measurements=measurements,
        lesions=lesions,
        comments=tuple(comments),
        not_assessed=not_assessed,
        key_image_uids=tuple(dict.fromkeys(key_images)),
    )


def _lesion(group: Any) -> LesionReadBack:
    """A TID 1410/1411 group (highdicom's planar or volumetric ROI group class)."""
    side = None
    for site in group.finding_sites:
        if site.laterality is not None:
            side = "left" if site.laterality == codes.LEFT else (
                "right" if site.laterality == codes.RIGHT else None)
    roi = group.roi
    region: Any = roi[0] if isinstance(roi, list) else roi
    graphic_type = sop_uid = None
    points: tuple[tuple[float, float], ...] = ()
    if region is not None and region.get("ValueType") == "SCOORD":
        graphic_type = str(region.GraphicType)
        data = [float(v) for v in region.GraphicData]
        points = tuple(zip(data[0::2], data[1::2], strict=True))
        sop_uid = str(region.ContentSequence[0].ReferencedSOPSequence[0]
                      .ReferencedSOPInstanceUID)
    values = {(m.name.value, m.name.scheme_designator): float(m.value)
              for m in group.get_measurements()}

    def get(concept: Any) -> float | None:
        return values.get((concept.value, concept.scheme_designator))

    return LesionReadBack(
        finding_key=str(codes.finding_key_for(group.finding_type)),
        tracking_identifier=group.tracking_identifier or "",
        probability=get(codes.PROBABILITY),
        diameter_mm=get(codes.DIAMETER),
        volume_ml=get(codes.VOLUME),
        laterality=side,
        graphic_type=graphic_type,
        image_points=points,
        referenced_sop_instance_uid=sop_uid,
    )


def read_back_findings(sr_path: Path) -> dict[str, float]:
    """Finding key -> probability for every finding the SR reports as assessed."""
    return read_back(sr_path).findings
