"""Secondary Capture key images (PS3.3 A.8.1, SC Image IOD) of one result.

One new series in the source study: instance 1 is the summary panel, then one
key axial slice per lesion the SR lists (``sr_writer.plan``: Present findings,
most probable first, at most ``sc_max_key_images``). RGB, BurnedInAnnotation
YES (the pixels carry text), RLE Lossless: text and outlines stay exact (a
JPEG would blur them) at a fraction of the uncompressed size.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import RLELossless

from ctnode import __version__
from ctnode.settings import OutputSettings
from inference.types import Evidence, ModelStatus, StudyResult
from sr_writer import content, render
from sr_writer.identity import (
    drop_incomplete_study_references,
    no_phi_warnings,
    reference_dataset,
)
from sr_writer.plan import report_plan
from sr_writer.report import (
    SC_SERIES_DESCRIPTION,
    result_uids,
    source_attributes,
    with_models,
)

logger = logging.getLogger(__name__)

BODY_PART = "CHEST"
"""BodyPartExamined of our SC: without it dciodvfy flags Laterality (Type 2C)."""


def render_images(
    result: StudyResult, settings: OutputSettings, *, software_version: str = __version__,
    finding_threshold: float = 0.5,
) -> list[np.ndarray]:
    """The RGB pixels of every SC image of a result, in instance order (summary first)."""
    fonts = render.load_fonts(settings.font_dir)
    plan = report_plan(result, finding_threshold, settings.sc_max_key_images)
    images = [render.render_summary(
        result, plan, fonts, software_version=software_version,
        model_lines=content.model_version_lines(result.models),
    )]
    if result.volume is not None:
        images += [render.render_key_slice(result.volume, lesion, fonts)
                   for lesion in plan.key_images]
    return images


def build_secondary_capture(
    result: StudyResult,
    source_datasets: Sequence[Dataset],
    settings: OutputSettings,
    *,
    software_version: str = __version__,
    finding_threshold: float = 0.5,
    model_versions: Sequence[ModelStatus] | None = None,
) -> list[hd.sc.SCImage]:
    """The SC images of one result (summary panel first, then key slices).

    For a Failure only the summary panel is made (it says the AI did not run);
    whether to write it is the caller's decision (``write_failure_sc``).
    ``model_versions`` overrides ``result.models`` as in ``build_structured_report``.
    """
    result = with_models(result, model_versions)
    ref = reference_dataset(source_datasets, result.study_uid)
    uids = result_uids(result, source_datasets, settings, software_version)
    chosen = report_plan(result, finding_threshold, settings.sc_max_key_images).key_images
    pixels = render_images(result, settings, software_version=software_version,
                           finding_threshold=finding_threshold)
    shared = source_attributes(result, source_datasets, settings, software_version)
    series_uid = uids.uid("sc.series")
    images: list[hd.sc.SCImage] = []
    for number, array in enumerate(pixels, start=1):
        key = chosen[number - 2] if number > 1 else None
        orientation = render.image_orientation(result.volume) if (
            key is not None and result.volume is not None) else ("L", "P")
        with no_phi_warnings():
            sc = _sc_image(
                ref, array, series_instance_uid=series_uid, series_number=settings.sc_series_number,
                sop_instance_uid=uids.uid(f"sc.instance/{number}"), instance_number=number,
                manufacturer=settings.manufacturer, patient_orientation=orientation, **shared)
        sc.BodyPartExamined = BODY_PART
        sc.BurnedInAnnotation = "YES"
        if key is None:
            sc.PatientOrientation = []  # a text panel has no anatomy (Type 2: empty)
            sc.ImageComments = "AI result summary panel"
        else:
            _reference_source_slice(sc, result, key.evidence)
            sc.ImageComments = f"AI key image: {key.label}"
        drop_incomplete_study_references(sc)
        images.append(sc)
    logger.info("built %d Secondary Capture image(s) in series %s for study %s",
                len(images), series_uid, ref.StudyInstanceUID)
    return images


def _sc_image(ref: Dataset, array: np.ndarray, **kwargs: Any) -> hd.sc.SCImage:
    """One RGB SC image in the reference's patient and study."""
    return hd.sc.SCImage.from_ref_dataset(
        ref_dataset=ref,
        pixel_array=array,
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        transfer_syntax_uid=RLELossless,
        series_description=SC_SERIES_DESCRIPTION,
        **kwargs,
    )


def _reference_source_slice(sc: hd.sc.SCImage, result: StudyResult, evidence: Evidence) -> None:
    """Source Image Sequence (General Image, Type 3): the CT slice this image shows."""
    volume = result.volume
    if volume is None or not volume.slice_sop_instance_uids or not volume.sop_class_uid:
        return
    item = Dataset()
    item.ReferencedSOPClassUID = volume.sop_class_uid
    item.ReferencedSOPInstanceUID = volume.slice_sop_instance_uids[evidence.slice_index]
    sc.SourceImageSequence = [item]
