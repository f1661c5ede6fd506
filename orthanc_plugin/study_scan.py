"""Decide from Orthanc's index whether a stable study needs a job, and fingerprint it.

Standard library only (runs inside Orthanc). Reads two REST resources through a
``get_json`` callable, so the same code serves the plugin (``orthanc.RestApiGet``)
and tests (a fake).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

from orthanc_plugin.types import PluginConfig, StudyScan

logger = logging.getLogger(__name__)

GetJson = Callable[[str], Any]


def content_hash(instance_ids: list[str]) -> str:
    """SHA-256 over the sorted Orthanc instance IDs (themselves hashes of the UIDs).

    Order-independent, so the same set of instances always gives the same job key.
    """
    digest = hashlib.sha256()
    for instance_id in sorted(instance_ids):
        digest.update(instance_id.encode("ascii"))
        digest.update(b"\n")
    return digest.hexdigest()


def is_own_series(series: dict[str, Any], config: PluginConfig) -> bool:
    """Our SR/SC: Manufacturer is ours and the modality is not one we analyse."""
    tags = series.get("MainDicomTags", {})
    manufacturer = str(tags.get("Manufacturer", "")).strip()
    modality = str(tags.get("Modality", "")).strip().upper()
    return manufacturer == config.own_manufacturer and modality not in config.trigger_modalities


def scan_study(orthanc_study_id: str, get_json: GetJson, config: PluginConfig) -> StudyScan:
    """Look at a stable study and say whether (and under which key) to queue it.

    Only series of a trigger modality (CT) are analysed and hashed; our own
    output and other objects (dose reports, localizers of another modality)
    neither start a job nor change the hash.
    """
    study = get_json(f"/studies/{orthanc_study_id}")
    study_uid = str(study.get("MainDicomTags", {}).get("StudyInstanceUID", ""))
    series_list = get_json(f"/studies/{orthanc_study_id}/series")
    analysed: list[str] = []
    own: list[str] = []
    instance_ids: list[str] = []
    for series in series_list:
        if is_own_series(series, config):
            own.append(series["ID"])
            continue
        modality = str(series.get("MainDicomTags", {}).get("Modality", "")).strip().upper()
        if modality in config.trigger_modalities:
            analysed.append(series["ID"])
            instance_ids.extend(series.get("Instances", []))
    reason = ""
    if not study_uid:
        reason = "study has no StudyInstanceUID"
    elif not analysed:
        reason = (
            "only our own output series" if own and len(own) == len(series_list)
            else f"no series of modality {'/'.join(config.trigger_modalities)}"
        )
    elif not instance_ids:
        reason = "no instances in the analysed series"
    return StudyScan(
        orthanc_study_id=orthanc_study_id,
        study_uid=study_uid,
        n_instances=len(instance_ids),
        content_hash=content_hash(instance_ids),
        analysed_series=tuple(sorted(analysed)),
        own_series=tuple(sorted(own)),
        skip_reason=reason,
        instance_ids=tuple(sorted(instance_ids)),
    )
