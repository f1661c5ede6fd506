"""Small parts of the TID 1500 report: observer, algorithm, verdicts, lesion groups.

Each function builds one template (PS3.16) with highdicom from our types; the
composite (``report.py``) arranges them. Groups carry a tracking identifier
(a human name) whose UID is derived, so re-running gives the same tracking UIDs.

Values are rounded to what the method supports (``rounded``): a probability
to 3 decimals, millimetres to 0.1, millilitres to 1 (0.1 below 10 ml, 0.01
below 1 ml: voxels are ~0.001-0.01 ml), HU and scores to 1, percent to 0.1.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import highdicom as hd
import numpy as np
from pydicom.sr.coding import Code

from inference.types import FindingResult, Measurement, ModelStatus
from sr_writer import codes
from sr_writer.geometry import Region2D
from sr_writer.identity import UidFactory
from sr_writer.plan import NotAssessed, ReportedLesion

logger = logging.getLogger(__name__)

_HAS_PROPERTIES = hd.sr.RelationshipTypeValues.HAS_PROPERTIES
_CONTAINS = hd.sr.RelationshipTypeValues.CONTAINS


def rounded(value: float, unit: str, *, probability: bool = False) -> float:
    """``value`` rounded to the precision its unit (and the method) supports."""
    v = float(value)
    if probability:
        return round(v, 3)
    if unit in ("ml", "mL", "cm3"):
        digits = 0 if abs(v) >= 10 else (1 if abs(v) >= 1 else 2)
    elif unit in ("mm", "%", "mm2"):
        digits = 1
    elif unit in ("[hnsf'U]", "{Agatston}", "{count}"):
        digits = 0
    elif unit == "1":
        digits = 0 if abs(v) >= 100 else 2  # a score of hundreds; else a ratio
    else:  # an unknown unit: 3 significant digits
        digits = 0 if v == 0 else max(0, 2 - int(math.floor(math.log10(abs(v)))))
    out = round(v, digits)
    return 0.0 if out == 0 else out


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


def tracking(uids: UidFactory, identifier: str, role: str) -> hd.sr.TrackingIdentifier:
    """TID 4108: a human identifier with a UID derived from a stable ``role``."""
    return hd.sr.TrackingIdentifier(uid=uids.uid(f"tracking/{role}"), identifier=identifier)


def _measurement(name: hd.sr.CodedConcept | Code, value: float, unit: str,
                 *, probability: bool = False) -> hd.sr.Measurement:
    return hd.sr.Measurement(name=name, value=rounded(value, unit, probability=probability),
                             unit=codes.ucum_unit(unit))


def _num(name: hd.sr.CodedConcept | Code, value: float, unit: str, *,
         probability: bool = False) -> hd.sr.NumContentItem:
    return hd.sr.NumContentItem(
        name=name, value=rounded(value, unit, probability=probability),
        unit=codes.ucum_unit(unit), relationship_type=_HAS_PROPERTIES)


def model_measurement_concepts(
    measurements: Sequence[Measurement],
) -> list[tuple[hd.sr.CodedConcept, Measurement]]:
    """Each measurement with its concept name; a concept is used once per finding."""
    out: list[tuple[hd.sr.CodedConcept, Measurement]] = []
    used: set[tuple[str, str]] = set()
    for m in measurements:
        concept = codes.measurement_concept(m.name, m.description)
        if (concept.value, concept.scheme_designator) in used:
            concept = codes.measurement_concept(m.name, m.description, private=True)
        if (concept.value, concept.scheme_designator) in used:
            raise ValueError(f"measurement {m.name!r} appears twice in one finding")
        used.add((concept.value, concept.scheme_designator))
        out.append((concept, m))
    return out


def text_item(name: Code, value: str,
              relationship: hd.sr.RelationshipTypeValues = _CONTAINS) -> hd.sr.TextContentItem:
    """A TEXT row: comments, reasons, the disclaimer."""
    return hd.sr.TextContentItem(name=name, value=value, relationship_type=relationship)


def _with_children(item: hd.sr.ContentItem, children: Sequence[hd.sr.ContentItem]) -> None:
    if children:
        item.ContentSequence = hd.sr.ContentSequence(list(children))


def finding_verdict(finding: FindingResult, threshold: float,
                    key_image_uids: Sequence[str], sc_class_uid: str) -> hd.sr.CodeContentItem:
    """One assessed finding: ``<finding> = Present/Absent`` with its numbers as properties.

    Properties: the probability (UCUM ``1``), the threshold at which Present is
    said, the model's measurements (rounded), the reason or method as a
    comment, and the key images that show it.
    """
    if finding.probability is None:
        raise ValueError(f"finding {finding.key} was not assessed")
    present = finding.probability >= threshold
    item = hd.sr.CodeContentItem(
        name=codes.finding_concept(finding.key),
        value=codes.PRESENT if present else codes.ABSENT, relationship_type=_CONTAINS)
    children: list[hd.sr.ContentItem] = [
        _num(codes.PROBABILITY, finding.probability, "1", probability=True),
        _num(codes.THRESHOLD, threshold, "1", probability=True),
    ]
    children += [_num(concept, m.value, m.unit)
                 for concept, m in model_measurement_concepts(finding.measurements)]
    for uid in key_image_uids:
        children.append(hd.sr.ImageContentItem(
            name=codes.KEY_IMAGES, referenced_sop_class_uid=sc_class_uid,
            referenced_sop_instance_uid=uid, relationship_type=_HAS_PROPERTIES))
    _with_children(item, children)
    return item


def not_assessed_verdict(entry: NotAssessed) -> hd.sr.CodeContentItem:
    """One finding not assessed: ``<finding> = Not Evaluated`` and why (never a fake 0)."""
    item = hd.sr.CodeContentItem(
        name=codes.finding_concept(entry.key), value=codes.NOT_EVALUATED,
        relationship_type=_CONTAINS)
    _with_children(item, [text_item(codes.COMMENT, f"Not assessed: {entry.reason}",
                                    _HAS_PROPERTIES)])
    return item


def overall_verdict(
    *, probability: float | None, decision: int | None, threshold: float,
    chosen_series_uid: str, selection_explanation: str,
    sc_uids: Sequence[str], sc_class_uid: str, algorithm: hd.sr.AlgorithmIdentification,
    image_conditions: str = "",
) -> list[hd.sr.ContentItem]:
    """TID 1500 Qualitative Evaluations, first rows: CAD summary (with the algorithm,
    TID 4019), Abnormal, selection, SC."""
    summary = hd.sr.CodeContentItem(
        name=codes.CAD_SUMMARY,
        value=(codes.CAD_SUCCEEDED_WITH_FINDINGS if decision == 1
               else codes.CAD_SUCCEEDED_WITHOUT_FINDINGS),
        relationship_type=_CONTAINS)
    _with_children(summary, list(algorithm))  # type: ignore[arg-type]  # a list of items
    rows: list[hd.sr.ContentItem] = [summary]
    if decision is not None:
        abnormal = hd.sr.CodeContentItem(
            name=codes.ABNORMAL, value=codes.PRESENT if decision == 1 else codes.ABSENT,
            relationship_type=_CONTAINS)
        props: list[hd.sr.ContentItem] = []
        if probability is not None:
            props.append(_num(codes.PROBABILITY, probability, "1", probability=True))
        props.append(_num(codes.THRESHOLD, threshold, "1", probability=True))
        _with_children(abnormal, props)
        rows.append(abnormal)
    if chosen_series_uid:
        rows.append(hd.sr.UIDRefContentItem(
            name=codes.SOURCE_SERIES, value=chosen_series_uid, relationship_type=_CONTAINS))
    if selection_explanation:
        rows.append(text_item(codes.COMMENT, f"Series selection: {selection_explanation}"))
    if image_conditions:
        rows.append(text_item(codes.COMMENT, image_conditions))
    rows += [hd.sr.ImageContentItem(name=codes.KEY_IMAGES, referenced_sop_class_uid=sc_class_uid,
                                    referenced_sop_instance_uid=uid, relationship_type=_CONTAINS)
             for uid in sc_uids]
    return rows


def failure_verdict(*, error: str, error_code: str | None, selection_explanation: str,
                    algorithm: hd.sr.AlgorithmIdentification) -> list[hd.sr.ContentItem]:
    """The AI did not run (CID 6047 "No algorithms succeeded") and why."""
    code = f" [{error_code}]" if error_code else ""
    summary = hd.sr.CodeContentItem(name=codes.CAD_SUMMARY, value=codes.CAD_FAILED,
                                    relationship_type=_CONTAINS)
    _with_children(summary, list(algorithm))  # type: ignore[arg-type]  # a list of items
    rows: list[hd.sr.ContentItem] = [
        summary,
        text_item(codes.COMMENT, f"AI processing failed{code}: {error.rstrip('.')}. "
                  "No AI result exists for this study; read it without AI support."),
    ]
    if selection_explanation:
        rows.append(text_item(codes.COMMENT, f"Series selection: {selection_explanation}"))
    return rows


def qualitative_evaluations(rows: Sequence[hd.sr.ContentItem]) -> hd.sr.ContainerContentItem:
    """TID 1500 row 14: the "Qualitative Evaluations" container (SEPARATE items)."""
    container = hd.sr.ContainerContentItem(
        name=codes.QUALITATIVE_EVALUATIONS, is_content_continuous=False,
        relationship_type=_CONTAINS)
    _with_children(container, rows)
    return container


def lesion_group(
    lesion: ReportedLesion,
    region: Region2D,
    *,
    uids: UidFactory,
    algorithm: hd.sr.AlgorithmIdentification,
    sop_class_uid: str,
    laterality: Code | None,
) -> (hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations
      | hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations):
    """One lesion: TID 1411 (volumetric) when it has a volume, else TID 1410 (planar).

    The Image Region is a 2D SCOORD on the key slice of the source series (a
    viewer draws it there); the group has its own probability, diameter,
    volume and ``<finding> = Present``.
    """
    key = lesion.finding.key
    concept = codes.finding_concept(key)
    site = codes.finding_site(key)
    sites = None
    if site is not None:
        lat = laterality if codes.site_is_paired(site) else None
        sites = [hd.sr.FindingSite(site, laterality=lat)]
    ev = lesion.evidence
    measurements = [_measurement(codes.PROBABILITY, lesion.probability, "1", probability=True)]
    if ev.diameter_mm is not None:
        measurements.append(_measurement(codes.DIAMETER, ev.diameter_mm, "mm"))
    if ev.volume_ml is not None:
        measurements.append(_measurement(codes.VOLUME, ev.volume_ml, "ml"))
    image_region = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues(region.graphic_type),
        graphic_data=np.round(np.asarray(region.points, dtype=float), 1),
        source_image=hd.sr.SourceImageForRegion(
            referenced_sop_class_uid=sop_class_uid,
            referenced_sop_instance_uid=region.sop_instance_uid,
            referenced_frame_numbers=[region.frame_number] if region.frame_number else None),
    )
    common = dict(
        tracking_identifier=tracking(uids, lesion.label, f"lesion/{key}/{lesion.number}"),
        finding_type=concept,
        algorithm_id=algorithm,
        finding_sites=sites,
        measurements=measurements,
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(concept, codes.PRESENT)],
    )
    if ev.volume_ml is not None:
        return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            referenced_regions=[image_region], **common)  # type: ignore[arg-type]
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        referenced_region=image_region, **common)  # type: ignore[arg-type]
