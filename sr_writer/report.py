"""The Structured Report: TID 1500 Measurement Report in a Comprehensive SR.

Layout of the content tree (PS3.16 TID 1500), every container SEPARATE so that
a renderer prints each value with its concept name:

- observer context: the node as device observer (TID 1004); procedure: CT chest;
- Image Library (TID 1600): only the source images a region points at (the
  full list of analysed instances is the evidence sequence);
- Imaging Measurements: one group per lesion of a Present finding, TID 1411
  (with a volume) or TID 1410, with its own probability, diameter, volume,
  site and laterality, and a 2D SCOORD (point, circle or outline) on its key
  source image, so OHIF and the dcmjs adapters draw it. Nothing without a
  region goes here: OHIF (3.x up to at least 3.13) stops loading an SR at a
  measurement group that has no image coordinates;
- Qualitative Evaluations (TID 1500 row 14): the CAD summary, Abnormal =
  Present/Absent with the probability of pathology and threshold, the chosen
  series, the key images (our Secondary Capture), then every finding of the
  vocabulary once: ``<finding> = Present/Absent`` with probability, threshold
  and the model's measurements, or ``<finding> = Not Evaluated`` with the
  reason; the disclaimer last.

On Failure the Qualitative Evaluations say the AI did not run and why.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Sequence
from typing import Any

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code
from pydicom.uid import SecondaryCaptureImageStorage

from ctnode import __version__
from ctnode.settings import OutputSettings
from inference.types import Evidence, ModelStatus, StudyResult
from series_selector.types import HUVolume
from sr_writer import codes, content
from sr_writer.geometry import headers_by_sop, lesion_region
from sr_writer.identity import (
    UidFactory,
    device_uid,
    drop_incomplete_study_references,
    no_phi_warnings,
    reference_dataset,
    specific_character_set,
    uid_factory,
)
from sr_writer.plan import ReportPlan, image_conditions_text, report_plan

logger = logging.getLogger(__name__)

DISCLAIMER = "AI result, decision support, not for diagnosis alone."
"""Said in every SR and on every Secondary Capture."""

SR_SERIES_DESCRIPTION = "AI chest CT result (decision support)"
SC_SERIES_DESCRIPTION = "AI chest CT key images (decision support)"


def result_uids(
    result: StudyResult,
    source_datasets: Sequence[Dataset],
    settings: OutputSettings,
    software_version: str = __version__,
) -> UidFactory:
    """The UID factory for one result (shared by its SR and SC objects)."""
    volume_series = result.volume.series_uid if result.volume is not None else ""
    series_uid = volume_series or result.series_uid
    if not series_uid:
        series_uid = ",".join(sorted({str(ds.SeriesInstanceUID) for ds in source_datasets
                                      if "SeriesInstanceUID" in ds}))
    return uid_factory(
        settings.org_uid_root,
        series_uid,
        software_version,
        [f"{m.name}={m.version}" for m in result.models],
        result.status.value,
    )


def with_models(result: StudyResult, models: Sequence[ModelStatus] | None) -> StudyResult:
    """The result with its model list replaced (when given), so SR, SC and UIDs agree."""
    if models is None:
        return result
    if not all(isinstance(m, ModelStatus) for m in models):
        raise TypeError("model_versions must hold inference.types.ModelStatus objects")
    return dataclasses.replace(result, models=tuple(models))


def source_attributes(
    result: StudyResult, source_datasets: Sequence[Dataset], settings: OutputSettings,
    software_version: str,
) -> dict[str, object]:
    """Constructor keywords shared by our SR and SC objects (equipment, charset, dates).

    Series and content date/time are the moment of writing (local time, as
    the modality's own dates are), so a viewer sorts our series after the source.
    """
    ref = reference_dataset(source_datasets, result.study_uid)
    now = datetime.datetime.now()
    kwargs: dict[str, object] = dict(
        manufacturer_model_name=settings.model_name,
        software_versions=software_version,
        device_serial_number=settings.device_serial_number,
        series_date=now.date(),
        series_time=now.time(),
        content_date=now.date(),
        content_time=now.time(),
    )
    if settings.institution_name:
        kwargs["institution_name"] = settings.institution_name
    charset = specific_character_set(ref)
    if charset is not None:
        kwargs["specific_character_set"] = charset
    return kwargs


def laterality(volume: HUVolume, evidence: Evidence) -> Code | None:
    """Left or right of the body midline on the evidence slice (None if undecidable).

    The midline is the centroid column of the body (voxels above -500 HU) on
    that slice, so an off-centre patient in the field of view is handled.
    """
    z = evidence.slice_index
    if not 0 <= z < volume.shape[0]:
        return None
    body = volume.voxels[z] > -500
    if not body.any():
        return None
    rows, cols = np.nonzero(body)
    mid = volume.index_to_lps(z, float(rows.mean()), float(cols.mean()))
    dx = evidence.center_lps[0] - mid[0]  # LPS: +x is the patient's left
    if abs(dx) < 5.0:  # within 5 mm of the midline: no side
        return None
    return codes.LEFT if dx > 0 else codes.RIGHT


def _uses_private_codes(report: Dataset | Sequence[Dataset]) -> bool:
    """Whether any code in the content tree is from our private scheme (then it is identified)."""
    items = report if isinstance(report, Sequence) else [report]
    return any(
        elem.keyword == "CodingSchemeDesignator" and elem.value == codes.PRIVATE_SCHEME
        for item in items for elem in item.iterall()
    )


def make_separate(item: Dataset) -> None:
    """Every CONTAINER SEPARATE: renderers then label each value (CONTINUOUS runs them on)."""
    if item.get("ValueType") == "CONTAINER":
        item.ContinuityOfContent = "SEPARATE"
    for child in item.get("ContentSequence", []):
        make_separate(child)


def sc_instance_uids(result: StudyResult, plan: ReportPlan, uids: UidFactory,
                     settings: OutputSettings) -> list[str]:
    """SOP Instance UIDs of the SC images ``write_result_objects`` writes for this result."""
    if not (result.ok or settings.write_failure_sc):
        return []
    return [uids.uid(f"sc.instance/{n}") for n in range(1, 2 + len(plan.key_images))]


def _sc_stub(ref: Dataset, uids: UidFactory, uid: str) -> Dataset:
    """Evidence entry of one of our SC images (the SR references them)."""
    ds = Dataset()
    ds.StudyInstanceUID = ref.StudyInstanceUID
    ds.SeriesInstanceUID = uids.uid("sc.series")
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = uid
    return ds


def build_structured_report(
    result: StudyResult,
    source_datasets: Sequence[Dataset],
    settings: OutputSettings,
    *,
    software_version: str = __version__,
    finding_threshold: float = 0.5,
    model_versions: Sequence[ModelStatus] | None = None,
) -> hd.sr.ComprehensiveSR:
    """TID 1500 Measurement Report of one result, in the source study, as a new series.

    ``source_datasets`` are headers of the analysed instances (Success) or of
    some received instances (Failure); patient and study attributes are copied
    from them. A finding at or above
    ``finding_threshold`` (pass ``settings.inference.finding_threshold``) is
    Present. ``model_versions`` overrides ``result.models`` (the models named in
    the algorithm identification and in the UID seed). The SR references the
    Secondary Capture images that ``write_result_objects`` writes with the
    same settings. Building a Failure SR does not look at ``write_failure_sr``:
    the caller decides whether to write it.

    Raises ``sr_writer.errors.MissingSourceError`` / ``SourceMismatchError``
    when the sources are absent or from another study.
    """
    result = with_models(result, model_versions)
    ref = reference_dataset(source_datasets, result.study_uid)
    uids = result_uids(result, source_datasets, settings, software_version)
    plan = report_plan(result, finding_threshold, settings.sc_max_key_images)
    algorithm = content.algorithm_identification(
        software_version, result.models, settings.manufacturer)
    observer = content.observation_context(
        device_uid=device_uid(settings.org_uid_root, settings.device_serial_number),
        manufacturer=settings.manufacturer,
        model_name=settings.model_name,
        serial_number=settings.device_serial_number,
    )
    explanation = result.selection.explanation if result.selection is not None else ""
    sc_uids = sc_instance_uids(result, plan, uids, settings)
    groups: list[hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations
                 | hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations] = []
    library: list[Dataset] = []
    if result.ok:
        chosen = result.volume.series_uid if result.volume is not None else result.series_uid
        rows = content.overall_verdict(
            probability=result.probability, decision=result.decision,
            threshold=finding_threshold, chosen_series_uid=chosen or "",
            selection_explanation=explanation, sc_uids=sc_uids[:1],
            sc_class_uid=SecondaryCaptureImageStorage, algorithm=algorithm,
            image_conditions=image_conditions_text(result))
        key_sc = {id(lesion): sc_uids[i + 1] for i, lesion in enumerate(plan.key_images)
                  if i + 1 < len(sc_uids)}
        for finding in plan.assessed:
            shown = [key_sc[id(le)] for le in plan.key_images
                     if le.finding.key == finding.key and id(le) in key_sc]
            rows.append(content.finding_verdict(finding, finding_threshold, shown,
                                                SecondaryCaptureImageStorage))
        rows += [content.not_assessed_verdict(entry) for entry in plan.not_assessed]
        rows.append(content.text_item(codes.COMMENT, DISCLAIMER))
        groups, library = _lesion_groups(result, plan, source_datasets, uids, algorithm)
    else:
        rows = content.failure_verdict(
            error=result.error or "unknown error", error_code=result.error_code,
            selection_explanation=explanation, algorithm=algorithm)
        if sc_uids:
            rows.append(hd.sr.ImageContentItem(
                name=codes.KEY_IMAGES, referenced_sop_class_uid=SecondaryCaptureImageStorage,
                referenced_sop_instance_uid=sc_uids[0],
                relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
        rows.append(content.text_item(codes.COMMENT, DISCLAIMER))

    placeholder = [hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=content.tracking(uids, "none", "placeholder"))]
    report = hd.sr.MeasurementReport(
        observation_context=observer,
        procedure_reported=codes.PROCEDURE_CT_CHEST,
        imaging_measurements=groups or placeholder,
        title=codes.DOCUMENT_TITLE,
        referenced_images=library or None,
    )
    root = report[0]
    if not groups:
        # highdicom insists on one measurement group; TID 1500 does not when the
        # Qualitative Evaluations container is there, and an empty one reads as "no lesion"
        root.ContentSequence = [item for item in root.ContentSequence
                                if item.ConceptNameCodeSequence[0].CodeValue != "126010"]
    root.ContentSequence.append(content.qualitative_evaluations(rows))
    make_separate(root)
    evidence = [ref, *(ds for ds in source_datasets if ds is not ref),
                *(_sc_stub(ref, uids, uid) for uid in sc_uids)]
    with no_phi_warnings():
        sr = _comprehensive_sr(
            report, evidence, uids, settings,
            **source_attributes(result, source_datasets, settings, software_version))
    drop_incomplete_study_references(sr)
    logger.info(
        "built TID 1500 SR %s for study %s (%s, %d lesion groups, %d findings assessed, "
        "%d not assessed)", sr.SOPInstanceUID, ref.StudyInstanceUID, result.status.value,
        len(groups), len(plan.assessed), len(plan.not_assessed),
    )
    return sr


def _lesion_groups(
    result: StudyResult, plan: ReportPlan, source_datasets: Sequence[Dataset],
    uids: UidFactory, algorithm: hd.sr.AlgorithmIdentification,
) -> tuple[list[hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations
                | hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations], list[Dataset]]:
    """One group per lesion with a region on a source image, and the images they point at."""
    volume = result.volume
    if volume is None or not volume.sop_class_uid:
        return [], []
    headers = headers_by_sop(source_datasets)
    groups: list[hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations
                 | hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations] = []
    library: dict[str, Dataset] = {}
    for lesion in plan.lesions:
        region = lesion_region(volume, lesion.evidence, headers)
        if region is None:
            logger.info("lesion %s has no source image: not listed", lesion.label)
            continue
        groups.append(content.lesion_group(
            lesion, region, uids=uids, algorithm=algorithm, sop_class_uid=volume.sop_class_uid,
            laterality=laterality(volume, lesion.evidence)))
        if region.sop_instance_uid in headers:
            library[region.sop_instance_uid] = headers[region.sop_instance_uid]
    return groups, list(library.values())


def _comprehensive_sr(
    report: hd.sr.MeasurementReport, evidence: Sequence[Dataset], uids: UidFactory,
    settings: OutputSettings, **kwargs: Any,
) -> hd.sr.ComprehensiveSR:
    private = _uses_private_codes(report)
    return hd.sr.ComprehensiveSR(
        evidence=list(evidence),
        content=report[0],
        series_instance_uid=uids.uid("sr.series"),
        series_number=settings.sr_series_number,
        sop_instance_uid=uids.uid("sr.instance"),
        instance_number=1,
        manufacturer=settings.manufacturer,
        is_complete=True,
        is_final=False,
        series_description=SR_SERIES_DESCRIPTION,
        coding_schemes=[codes.coding_scheme_identification()] if private else None,
        **kwargs,
    )
