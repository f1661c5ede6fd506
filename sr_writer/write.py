"""Writer: one result -> SR + Secondary Capture files + result JSON in a folder.

Files are written under temporary names and renamed at the end, so a failure
leaves no half-written object that a spool watcher could send to a PACS.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset

from ctnode import __version__
from ctnode.settings import OutputSettings
from inference.types import ModelStatus, StudyResult
from sr_writer.errors import MissingSourceError, OutputError
from sr_writer.report import build_structured_report, with_models
from sr_writer.secondary_capture import build_secondary_capture
from sr_writer.types import WrittenObjects

logger = logging.getLogger(__name__)

JSON_NAME = "result.json"


def read_source_headers(paths: Sequence[Path]) -> list[Dataset]:
    """Headers (no pixels) of the source instances; an unreadable one is an OutputError."""
    headers: list[Dataset] = []
    for path in paths:
        try:
            headers.append(pydicom.dcmread(path, stop_before_pixels=True))
        except Exception as exc:  # pydicom raises many types on corrupt input
            raise OutputError(f"cannot read source header {path.name}: {exc}") from exc
    return headers


def write_result_objects(
    result: StudyResult,
    out_dir: Path,
    settings: OutputSettings,
    *,
    source_paths: Sequence[Path] | None = None,
    software_version: str = __version__,
    finding_threshold: float = 0.5,
    model_versions: Sequence[ModelStatus] | None = None,
) -> WrittenObjects:
    """Write the SR, the SC images and ``result.json`` of one result into ``out_dir``.

    ``source_paths`` default to the analysed slices (``result.volume.source_paths``);
    for a Failure without a volume pass some received instances of the study.
    On Failure the SR (and SC panel) are written only if ``write_failure_sr``
    (and ``write_failure_sc``) are on. Same input and versions give the same SOP
    Instance UIDs and file names.

    ``model_versions`` overrides ``result.models`` (also in the JSON).

    Raises ``MissingSourceError`` when there is no source header (e.g. NIfTI
    input: there is no DICOM study to join) and ``OutputError`` when a source
    header cannot be read; nothing is left in ``out_dir`` then.
    """
    paths = list(source_paths) if source_paths is not None else (
        list(result.volume.source_paths) if result.volume is not None else [])
    if not paths:
        raise MissingSourceError("no source DICOM instance to take patient and study from")
    result = with_models(result, model_versions)
    headers = read_source_headers(paths)
    out_dir.mkdir(parents=True, exist_ok=True)

    objects: list[tuple[str, Dataset]] = []
    if result.ok or settings.write_failure_sr:
        sr = build_structured_report(result, headers, settings,
                                     software_version=software_version,
                                     finding_threshold=finding_threshold)
        objects.append((f"SR_{sr.SOPInstanceUID}.dcm", sr))
        if result.ok or settings.write_failure_sc:
            for sc in build_secondary_capture(result, headers, settings,
                                              software_version=software_version,
                                              finding_threshold=finding_threshold):
                objects.append((f"SC_{sc.InstanceNumber:03d}_{sc.SOPInstanceUID}.dcm", sc))
    else:
        logger.info("Failure result for study %s: failure SR switched off", result.study_uid)

    body: dict[str, Any] = result.to_json()
    body["dicom_outputs"] = [
        {"file": name, "sop_class_uid": str(ds.SOPClassUID),
         "sop_instance_uid": str(ds.SOPInstanceUID),
         "series_instance_uid": str(ds.SeriesInstanceUID)}
        for name, ds in objects
    ]
    staged: list[tuple[Path, Path]] = []
    try:
        for name, ds in objects:
            final = out_dir / name
            tmp = out_dir / f".{name}.partial"
            staged.append((tmp, final))  # before writing: a write that fails midway is cleaned too
            pydicom.dcmwrite(tmp, ds, enforce_file_format=True)
        final_json = out_dir / JSON_NAME
        tmp_json = out_dir / f".{JSON_NAME}.partial"
        staged.append((tmp_json, final_json))
        tmp_json.write_text(json.dumps(body, indent=2, ensure_ascii=False), encoding="utf-8")
    except Exception:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, final in staged:
        os.replace(tmp, final)

    sr_path = out_dir / objects[0][0] if objects and objects[0][0].startswith("SR_") else None
    written = WrittenObjects(
        sr_path=sr_path,
        sc_paths=tuple(out_dir / name for name, _ in objects if name.startswith("SC_")),
        json_path=out_dir / JSON_NAME,
    )
    logger.info("wrote %d DICOM object(s) and %s for study %s",
                len(objects), JSON_NAME, result.study_uid)
    return written
