"""Types that leave ``sr_writer``: what was written, and what an SR reads back as."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class WrittenObjects:
    """Paths of the objects written for one result.

    ``sr_path`` is None when no SR was written (a Failure with
    ``write_failure_sr`` off); ``sc_paths`` lists the Secondary Capture images in
    instance-number order (summary panel first).
    """

    sr_path: Path | None
    sc_paths: tuple[Path, ...]
    json_path: Path

    def __post_init__(self) -> None:
        if self.sr_path is not None and not isinstance(self.sr_path, Path):
            raise TypeError("WrittenObjects.sr_path must be a pathlib.Path or None")
        if not isinstance(self.json_path, Path):
            raise TypeError("WrittenObjects.json_path must be a pathlib.Path")
        if not all(isinstance(p, Path) for p in self.sc_paths):
            raise TypeError("WrittenObjects.sc_paths must hold pathlib.Path objects")

    @property
    def dicom_paths(self) -> tuple[Path, ...]:
        """Every DICOM object written (SR first), e.g. for C-STORE delivery."""
        return ((self.sr_path,) if self.sr_path else ()) + self.sc_paths


@dataclass(frozen=True, slots=True)
class LesionReadBack:
    """One TID 1410/1411 lesion group as read back from an SR.

    ``image_points`` are the SCOORD's (column, row) pixel positions on the
    source image ``referenced_sop_instance_uid``.
    """

    finding_key: str
    tracking_identifier: str
    probability: float | None
    diameter_mm: float | None
    volume_ml: float | None
    laterality: str | None = None  # "left" / "right" of the finding site, when given
    graphic_type: str | None = None  # POINT, CIRCLE or POLYLINE
    image_points: tuple[tuple[float, float], ...] = ()
    referenced_sop_instance_uid: str | None = None


@dataclass(frozen=True, slots=True)
class ReportReadBack:
    """What a TID 1500 SR written by us says, read back with a standard reader.

    ``findings`` maps finding key -> probability for every assessed finding;
    ``present`` maps finding key -> the Present/Absent evaluation;
    ``not_assessed`` maps finding key -> the stated reason.
    """

    sop_instance_uid: str
    study_instance_uid: str
    processing_succeeded: bool
    overall_probability: float | None
    decision: int | None
    findings: dict[str, float] = field(default_factory=dict)
    present: dict[str, bool] = field(default_factory=dict)
    measurements: dict[str, dict[str, float]] = field(default_factory=dict)
    lesions: tuple[LesionReadBack, ...] = ()
    comments: tuple[str, ...] = ()
    not_assessed: dict[str, str] = field(default_factory=dict)
    key_image_uids: tuple[str, ...] = ()
