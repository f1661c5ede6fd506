"""Small parts of the TID 1500 report: observer, algorithm, measurement groups.

Each function builds one template (PS3.16) with highdicom from our types; the
composite (``report.py``) arranges them. Groups carry a tracking identifier
whose UID is derived, so re-running gives the same tracking UIDs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import highdicom as hd
import numpy as np
from pydicom.sr.coding import Code

from inference.types import Evidence, FindingResult, Measurement, ModelStatus
from sr_writer import codes
from sr_writer.identity import UidFactory

logger = logging.getLogger(__name__)


def observation_context(
    *, device_uid: str, manufacturer: str, model_name: str, serial_number: str,
    name: str = "ctnode",
) -> hd.sr.ObservationContext:
    """TID 1002/1004: the node itself as the device observer."""
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.OBSERVER_TYPE_DEVICE,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=device_uid,
                name=name,
                manufacturer_name=manufacturer,
                model_name=model_name,
                serial_number=serial_number,
            ),
        )
    )


def model_version_lines(models: Sequence[ModelStatus]) -> list[str]:
    """One line per model: name, version, and whether its weights are installed."""
    return [
        f"{m.name} {m.version} "
        f"({'weights installed' if m.weights_installed else 'weights missing'})"
        for m in sorted(models, key=lambda m: m.name)
    ]


def algorithm_identification(
    software_version: str, models: Sequence[ModelStatus], manufacturer: str
) -> hd.sr.AlgorithmIdentification:
    """TID 4019: the node as the algorithm; each model's version is a parameter."""
    return hd.sr.AlgorithmIdentification(
        name="ctnode chest CT ensemble",
        version=software_version,
        parameters=model_version_lines(models) or None,
        manufacturer=manufacturer,
    )


def tracking(uids: UidFactory, identifier: str) -> hd.sr.TrackingIdentifier:
    """TID 4108 with a derived UID (stable across re-runs)."""
    return hd.sr.TrackingIdentifier(uid=uids.uid(f"tracking/{identifier}"), identifier=identifier)


def _numeric(
    name: hd.sr.CodedConcept | Code, value: float, unit: str
) -> hd.sr.Measurement:
    return hd.sr.Measurement(name=name, value=float(value), unit=codes.ucum_unit(unit))


def _model_measurements(measurements: Sequence[Measurement]) -> list[hd.sr.Measurement]:
    """TID 300 items for a model's measurements; a concept is used once per group."""
    out: list[hd.sr.Measurement] = []
    used: set[tuple[str, str]] = set()
    for m in measurements:
        concept = codes.measurement_concept(m.name, m.description)
        if (concept.value, concept.scheme_designator) in used:
            concept = codes.measurement_concept(m.name, m.description, private=True)
        if (concept.value, concept.scheme_designator) in used:
            raise ValueError(f"measurement {m.name!r} appears twice in one finding")
        used.add((concept.value, concept.scheme_designator))
        out.append(_numeric(concept, m.value, m.unit))
    return out


def text_item(name: Code, value: str) -> hd.sr.TextContentItem:
    """A TEXT row (CONTAINS) to append to a group: comments, reasons, the disclaimer."""
    return hd.sr.TextContentItem(
        name=name, value=value, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
    )


def append_items(
    group: hd.sr.MeasurementsAndQualitativeEvaluations, items: Sequence[hd.sr.ContentItem]
) -> None:
    """Add rows to a built group's container (highdicom has no argument for TEXT rows)."""
    container = group[0]
    for item in items:
        container.ContentSequence.append(item)


def overall_group(
    *,
    uids: UidFactory,
    algorithm: hd.sr.AlgorithmIdentification,
    probability: float | None,
    decision: int | None,
    chosen_series_uid: str,
    selection_explanation: str,
    disclaimer: str,
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """TID 1501 "Overall result": probability of pathology, the 0/1 decision, selection.

    The CAD summary (DCM 111017, CID 6047) says whether processing succeeded and
    found something; "Abnormal" Present/Absent carries the 0/1 decision.
    """
    measurements = [] if probability is None else [_numeric(codes.PROBABILITY, probability, "1")]
    evaluations = [
        hd.sr.QualitativeEvaluation(
            codes.CAD_SUMMARY,
            codes.CAD_SUCCEEDED_WITH_FINDINGS if decision == 1
            else codes.CAD_SUCCEEDED_WITHOUT_FINDINGS,
        )
    ]
    if decision is not None:
        evaluations.append(hd.sr.QualitativeEvaluation(
            codes.ABNORMAL, codes.PRESENT if decision == 1 else codes.ABSENT))
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking(uids, "Overall result"),
        algorithm_id=algorithm,
        measurements=measurements or None,
        qualitative_evaluations=evaluations,
    )
    extra: list[hd.sr.ContentItem] = []
    if chosen_series_uid:
        extra.append(hd.sr.UIDRefContentItem(
            name=codes.SOURCE_SERIES, value=chosen_series_uid,
            relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
    if selection_explanation:
        extra.append(text_item(codes.COMMENT, f"Series selection: {selection_explanation}"))
    extra.append(text_item(codes.COMMENT, disclaimer))
    append_items(group, extra)
    return group


def failure_group(
    *,
    uids: UidFactory,
    algorithm: hd.sr.AlgorithmIdentification,
    error: str,
    error_code: str | None,
    selection_explanation: str,
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """TID 1501 saying the AI did not run (CID 6047 "No algorithms succeeded") and why."""
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking(uids, "AI processing"),
        algorithm_id=algorithm,
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(codes.CAD_SUMMARY, codes.CAD_FAILED)],
    )
    code = f" [{error_code}]" if error_code else ""
    rows = [text_item(
        codes.COMMENT,
        f"AI processing failed{code}: {error}. No AI result exists for this study; "
        "read it without AI support.",
    )]
    if selection_explanation:
        rows.append(text_item(codes.COMMENT, f"Series selection: {selection_explanation}"))
    append_items(group, rows)
    return group


def finding_group(
    finding: FindingResult,
    *,
    uids: UidFactory,
    algorithm: hd.sr.AlgorithmIdentification,
    present: bool,
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """TID 1501 for one assessed finding: type, site, probability, measurements, presence.

    The presence evaluation is named after the finding's own concept (not DCM
    121071 "Finding", which the finding-type row already uses: highdicom's
    reader would drop it).
    """
    if finding.probability is None:
        raise ValueError(f"finding {finding.key} was not assessed: it gets no measurement group")
    concept = codes.finding_concept(finding.key)
    site = codes.finding_site(finding.key)
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking(uids, finding.key),
        finding_type=concept,
        algorithm_id=algorithm,
        finding_sites=[hd.sr.FindingSite(site)] if site is not None else None,
        measurements=[_numeric(codes.PROBABILITY, finding.probability, "1"),
                      *_model_measurements(finding.measurements)],
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(
            concept, codes.PRESENT if present else codes.ABSENT)],
    )


def lesion_group(
    finding_key: str,
    evidence: Evidence,
    index: int,
    *,
    uids: UidFactory,
    algorithm: hd.sr.AlgorithmIdentification,
    frame_of_reference_uid: str,
    laterality: Code | None,
) -> (hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations
      | hd.sr.MeasurementsAndQualitativeEvaluations):
    """TID 1410 for one piece of evidence: a SCOORD3D point, diameter and volume.

    Without a frame of reference (e.g. a volume not read from DICOM) there is no
    3D coordinate to give, and the lesion becomes a TID 1501 group.
    """
    concept = codes.finding_concept(finding_key)
    site = codes.finding_site(finding_key)
    sites = None
    if site is not None:
        lat = laterality if codes.site_is_paired(site) else None
        sites = [hd.sr.FindingSite(site, laterality=lat)]
    measurements: list[hd.sr.Measurement] = []
    if evidence.diameter_mm is not None:
        measurements.append(_numeric(codes.DIAMETER, evidence.diameter_mm, "mm"))
    if evidence.volume_ml is not None:
        measurements.append(_numeric(codes.VOLUME, evidence.volume_ml, "ml"))
    common: dict[str, Any] = dict(
        tracking_identifier=tracking(uids, f"{finding_key} lesion {index}"),
        finding_type=concept,
        algorithm_id=algorithm,
        finding_sites=sites,
        measurements=measurements or None,
    )
    if not frame_of_reference_uid:
        return hd.sr.MeasurementsAndQualitativeEvaluations(**common)
    region = hd.sr.ImageRegion3D(
        graphic_type=hd.sr.GraphicTypeValues3D.POINT,
        graphic_data=np.asarray([evidence.center_lps], dtype=float),
        frame_of_reference_uid=frame_of_reference_uid,
    )
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        referenced_region=region, **common
    )
