"""Types that leave the inference package: model outputs and the study result.

``StudyResult.to_json`` is the REST contract of the seed service (keys never
renamed or removed) plus our extra keys.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inference.findings import FINDINGS, get_finding
from series_selector.types import HUVolume, SelectionReport


@dataclass(frozen=True, slots=True)
class Measurement:
    """One quantity with a UCUM unit, e.g. ('LAA-950', 7.2, '%')."""

    name: str
    value: float
    unit: str
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.value, (int, float)) or not math.isfinite(self.value):
            raise ValueError(f"Measurement {self.name!r} value must be a finite number")
        if not self.unit:
            raise ValueError(f"Measurement {self.name!r} needs a UCUM unit ('1' if unitless)")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "value": round(float(self.value), 4), "unit": self.unit,
                "description": self.description}


@dataclass(frozen=True, slots=True, eq=False)
class Evidence:
    """Where in the image a finding was seen.

    ``mask`` (optional) is a boolean array over the voxel box ``bbox``
    (z0, y0, x0, z1, y1, x1 — half-open) of the analysed volume; the Secondary
    Capture draws it.
    """

    description: str
    slice_index: int
    center_lps: tuple[float, float, float]
    volume_ml: float | None = None
    diameter_mm: float | None = None
    bbox: tuple[int, int, int, int, int, int] | None = None
    mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.mask is not None:
            if self.bbox is None:
                raise ValueError("Evidence.mask needs its bbox")
            z0, y0, x0, z1, y1, x1 = self.bbox
            if self.mask.shape != (z1 - z0, y1 - y0, x1 - x0) or self.mask.dtype != bool:
                raise ValueError("Evidence.mask must be a boolean array of the bbox's shape")

    def to_json(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "slice_index": self.slice_index,
            "center_lps_mm": [round(c, 2) for c in self.center_lps],
            "volume_ml": None if self.volume_ml is None else round(self.volume_ml, 3),
            "diameter_mm": None if self.diameter_mm is None else round(self.diameter_mm, 2),
        }


@dataclass(frozen=True, slots=True)
class FindingResult:
    """One finding as one model (or the stacker) scored it.

    ``probability`` is None when the finding was not assessed: never a fake 0.
    """

    key: str
    probability: float | None
    measurements: tuple[Measurement, ...] = ()
    evidence: tuple[Evidence, ...] = ()
    note: str = ""

    def __post_init__(self) -> None:
        get_finding(self.key)
        if self.probability is not None and not (0.0 <= self.probability <= 1.0):
            raise ValueError(f"FindingResult {self.key}: probability must be in [0, 1]")

    @property
    def assessed(self) -> bool:
        return self.probability is not None

    @property
    def display_name(self) -> str:
        return FINDINGS[self.key].display_name


@dataclass(frozen=True, slots=True)
class ModelStatus:
    """What the node knows about one model: for /health and ``model_versions``."""

    name: str
    version: str
    weights_installed: bool
    findings: tuple[str, ...]
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version,
                "weights_installed": self.weights_installed,
                "findings": list(self.findings), "description": self.description}


@dataclass(frozen=True, slots=True)
class ImageConditions:
    """What the image allows: field of view, coverage, contrast phase, kernel.

    Measured on the image by the analyzer (header values only as hints), carried
    in the result JSON (``image``) and the SR, so a reader knows why a finding
    was not assessed. ``None``/``"unknown"`` where it could not be told.
    """

    contrast_phase: str = "unknown"  # non_contrast | arterial | venous | delayed | unknown
    contrast_evidence: str = ""  # e.g. "aorta 320 HU, header agent 'OMNIPAQUE'"
    kernel_class: str = "unknown"  # soft | sharp | unknown (measured + header hint)
    noise_hu: float | None = None  # SD of HU in homogeneous tissue
    kvp: float | None = None
    slice_thickness_mm: float | None = None
    lungs_truncated: tuple[str, ...] = ()  # e.g. ("left lateral", "apices")
    body_truncated: bool = False  # the body outline touches the image border
    coverage_notes: tuple[str, ...] = ()  # sentences for people

    def to_json(self) -> dict[str, Any]:
        return {
            "contrast_phase": self.contrast_phase,
            "contrast_evidence": self.contrast_evidence,
            "kernel_class": self.kernel_class,
            "noise_hu": None if self.noise_hu is None else round(float(self.noise_hu), 1),
            "kvp": self.kvp,
            "slice_thickness_mm": self.slice_thickness_mm,
            "lungs_truncated": list(self.lungs_truncated),
            "body_truncated": self.body_truncated,
            "coverage_notes": list(self.coverage_notes),
        }


@dataclass(frozen=True, slots=True)
class ModelOutput:
    """One model's answer for one volume: per-finding scores and features for the stacker."""

    model: ModelStatus
    findings: tuple[FindingResult, ...]
    features: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    conditions: ImageConditions | None = None  # what the image allowed (analyzer only)
    # issue 16: a learned encoder's pooled feature vector (e.g. astra's 2048-d), for heads
    embedding: np.ndarray | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        keys = [f.key for f in self.findings]
        if len(keys) != len(set(keys)):
            raise ValueError(f"ModelOutput of {self.model.name} scores a finding twice")


class RunStatus(enum.Enum):
    """How one model's run on one study ended (issue 16: model isolation)."""

    OK = "ok"
    ERROR = "error"  # the model raised
    TIMEOUT = "timeout"  # past inference.model_time_limit_s
    OUT_OF_MEMORY = "out_of_memory"  # reached inference.model_memory_mb (or the device's)
    NOT_RUN = "not_run"  # weights not installed


@dataclass(frozen=True, slots=True)
class ModelRun:
    """One model on one study: how it ended, how long it took, and why when it failed."""

    name: str
    status: RunStatus
    seconds: float = 0.0
    detail: str = ""
    heads: tuple[str, ...] = ()  # trained heads applied to its features (name@version)

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status.value, "seconds": round(float(self.seconds), 3),
                "detail": self.detail, "heads": list(self.heads)}


class ProcessingStatus(enum.Enum):
    SUCCESS = "Success"
    FAILURE = "Failure"


@dataclass(frozen=True, slots=True, eq=False)
class StudyResult:
    """The one result every door turns into its own answer."""

    status: ProcessingStatus
    study_uid: str = ""
    series_uid: str = ""
    probability: float | None = None
    decision: int | None = None
    findings: tuple[FindingResult, ...] = ()
    top_pathologies: tuple[str, ...] = ()
    most_dangerous_key: str | None = None
    selection: SelectionReport | None = None
    models: tuple[ModelStatus, ...] = ()
    error: str | None = None
    error_code: str | None = None
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    volume: HUVolume | None = None
    image: ImageConditions | None = None
    model_runs: tuple[ModelRun, ...] = ()  # issue 16: per-model run status of this study

    def __post_init__(self) -> None:
        if not isinstance(self.status, ProcessingStatus):
            raise TypeError("StudyResult.status must be a ProcessingStatus")
        if self.status is ProcessingStatus.FAILURE and not self.error:
            raise ValueError("a Failure StudyResult must say why in `error`")
        if self.probability is not None and not (0.0 <= self.probability <= 1.0):
            raise ValueError("StudyResult.probability must be in [0, 1]")
        if self.decision not in (None, 0, 1):
            raise ValueError("StudyResult.decision must be 0, 1 or None")

    @property
    def ok(self) -> bool:
        return self.status is ProcessingStatus.SUCCESS

    def finding(self, key: str) -> FindingResult | None:
        for f in self.findings:
            if f.key == key:
                return f
        return None

    def to_json(self, *, request_id: str | None = None) -> dict[str, Any]:
        """The seed service's keys, then ours. Never rename or remove a seed key."""
        most_dangerous = (
            FINDINGS[self.most_dangerous_key].display_name if self.most_dangerous_key else None
        )
        body: dict[str, Any] = {
            "study_uid": self.study_uid,
            "series_uid": self.series_uid,
            "probability_of_pathology": (
                None if self.probability is None else round(float(self.probability), 6)
            ),
            "pathology": self.decision,
            "top_pathologies": list(self.top_pathologies),
            "most_dangerous_pathology_type": most_dangerous,
            "processing_status": self.status.value,
            "time_of_processing": round(float(self.seconds), 3),
        }
        if self.status is ProcessingStatus.FAILURE:
            body["error"] = self.error
            body["error_code"] = self.error_code
        body["findings"] = {
            f.key: {
                "display_name": f.display_name,
                "probability": None if f.probability is None else round(f.probability, 4),
                "assessed": f.assessed,
                "measurements": [m.to_json() for m in f.measurements],
                "evidence": [e.to_json() for e in f.evidence],
                "note": f.note,
            }
            for f in self.findings
        }
        body["series_selection"] = None if self.selection is None else self.selection.to_json()
        body["image"] = None if self.image is None else self.image.to_json()
        body["model_versions"] = {m.name: m.to_json() for m in self.models}
        for run in self.model_runs:  # issue 16: how each model's run on this study ended
            if run.name in body["model_versions"]:
                body["model_versions"][run.name]["run"] = run.to_json()
        body["stage_seconds"] = {k: round(v, 3) for k, v in self.stage_seconds.items()}
        body["disclaimer"] = (
            "Decision support only, not a diagnosis: a radiologist must read the study."
        )
        if request_id is not None:
            body["request_id"] = request_id
        return body
