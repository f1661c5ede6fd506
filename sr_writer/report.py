"""The Structured Report: TID 1500 Measurement Report in a Comprehensive 3D SR.

Comprehensive 3D SR (not Enhanced SR) because lesion locations are SCOORD3D
points in the source frame of reference, which Enhanced SR cannot hold. Layout
of the content tree (PS3.16 TID 1500):

- observer context: the node as device observer (TID 1004);
- procedure reported: CT chest; image library: the analysed instances;
- "Overall result" group (TID 1501): probability of pathology, 0/1 decision,
  CAD processing summary, chosen series and the selection explanation;
- one TID 1501 group per *assessed* finding: finding type, site, probability
  (UCUM ``1``), model measurements, Present/Absent;
- one TID 1410 group per piece of evidence: SCOORD3D point, diameter, volume,
  finding site with laterality.

On Failure the report holds one group saying the AI did not run and why.
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

from ctnode import __version__
from ctnode.settings import OutputSettings
from inference.types import Evidence, ModelStatus, StudyResult
from series_selector.types import HUVolume
from sr_writer import codes, content
from sr_writer.identity import (
    UidFactory,
    device_uid,
    drop_incomplete_study_references,
    no_phi_warnings,
    reference_dataset,
    specific_character_set,
    uid_factory,
)

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


def _comprehensive_3d_sr(
    report: hd.sr.MeasurementReport, source_datasets: Sequence[Dataset], uids: UidFactory,
    settings: OutputSettings, **kwargs: Any,
) -> hd.sr.Comprehensive3DSR:
    private = _uses_private_codes(report)
    return hd.sr.Comprehensive3DSR(
        evidence=list(source_datasets),
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


def build_structured_report(
    result: StudyResult,
    source_datasets: Sequence[Dataset],
    settings: OutputSettings,
    *,
    software_version: str = __version__,
    finding_threshold: float = 0.5,
    model_versions: Sequence[ModelStatus] | None = None,
) -> hd.sr.Comprehensive3DSR:
    """TID 1500 Measurement Report of one result, in the source study, as a new series.

    ``source_datasets`` are headers of the analysed instances (Success) or of
    some received instances (Failure); patient and study attributes are copied
    from them. A finding at or above
    ``finding_threshold`` (pass ``settings.inference.finding_threshold``) is
    Present. ``model_versions`` overrides ``result.models`` (the models named in
    the algorithm identification and in the UID seed). Building a Failure SR
    does not look at ``write_failure_sr``: the caller decides whether to write it.

    Raises ``sr_writer.errors.MissingSourceError`` / ``SourceMismatchError``
    when the sources are absent or from another study.
    """
    result = with_models(result, model_versions)
    ref = reference_dataset(source_datasets, result.study_uid)
    uids = result_uids(result, source_datasets, settings, software_version)
    algorithm = content.algorithm_identification(
        software_version, result.models, settings.manufacturer)
    observer = content.observation_context(
        device_uid=device_uid(settings.org_uid_root, settings.device_serial_number),
        manufacturer=settings.manufacturer,
        model_name=settings.model_name,
        serial_number=settings.device_serial_number,
    )
    explanation = result.selection.explanation if result.selection is not None else ""
    groups: list[hd.sr.MeasurementsAndQualitativeEvaluations
                 | hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations] = []
    if result.ok:
        chosen = result.volume.series_uid if result.volume is not None else result.series_uid
        groups.append(content.overall_group(
            uids=uids, algorithm=algorithm, probability=result.probability,
            decision=result.decision, chosen_series_uid=chosen or "",
            selection_explanation=explanation, disclaimer=DISCLAIMER,
        ))
        for finding in result.findings:
            if finding.probability is None:  # not assessed: no group, never a fake 0
                continue
            groups.append(content.finding_group(
                finding, uids=uids, algorithm=algorithm,
                present=finding.probability >= finding_threshold,
            ))
            for i, evidence in enumerate(finding.evidence, start=1):
                side = laterality(result.volume, evidence) if result.volume is not None else None
                groups.append(content.lesion_group(
                    finding.key, evidence, i, uids=uids, algorithm=algorithm,
                    frame_of_reference_uid=(
                        result.volume.frame_of_reference_uid if result.volume is not None else ""),
                    laterality=side,
                ))
        library = [ds for ds in source_datasets if "ImageOrientationPatient" in ds]
    else:
        groups.append(content.failure_group(
            uids=uids, algorithm=algorithm, error=result.error or "unknown error",
            error_code=result.error_code, selection_explanation=explanation,
        ))
        library = []

    report = hd.sr.MeasurementReport(
        observation_context=observer,
        procedure_reported=codes.PROCEDURE_CT_CHEST,
        imaging_measurements=groups,
        title=codes.DOCUMENT_TITLE,
        referenced_images=library or None,
    )
    with no_phi_warnings():
        sr = _comprehensive_3d_sr(
            report, source_datasets, uids, settings,
            **source_attributes(result, source_datasets, settings, software_version))
    drop_incomplete_study_references(sr)
    logger.info(
        "built TID 1500 SR %s for study %s (%s, %d measurement groups)",
        sr.SOPInstanceUID, ref.StudyInstanceUID, result.status.value, len(groups),
    )
    return sr
