"""Types of the evaluation package: readers' marks, lesion truths, detections, reports.

Readers' marks are kept as the annotation files give them (pixel coordinates on
a slice named by its SOPInstanceUID); lesion truths are in patient space (LPS,
mm) so that any reconstruction of the same acquisition can be scored against
them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Outline:
    """One reader's contour of a nodule on one slice (LIDC ``roi``).

    ``points`` are (column, row) pixel coordinates (LIDC ``xCoord``, ``yCoord``).
    ``inclusion`` False marks a hole cut out of the nodule.
    """

    sop_uid: str
    z_mm: float
    points: tuple[tuple[int, int], ...]
    inclusion: bool = True

    def __post_init__(self) -> None:
        if not self.sop_uid:
            raise ValueError("Outline.sop_uid must name the slice")
        if not self.points:
            raise ValueError("Outline.points must hold at least one point")


@dataclass(frozen=True, slots=True)
class ReaderNodule:
    """One reader's outlined nodule (LIDC: nodules of 3 mm or more)."""

    reader: str
    nodule_id: str
    outlines: tuple[Outline, ...]
    characteristics: tuple[tuple[str, int], ...] = ()  # (name, rating), LIDC 1-5/1-6 scales

    def characteristic(self, name: str) -> int | None:
        return dict(self.characteristics).get(name)


@dataclass(frozen=True, slots=True)
class PointMark:
    """A single-point mark: a nodule < 3 mm or a non-nodule >= 3 mm (LIDC)."""

    reader: str
    mark_id: str
    kind: str  # "small_nodule" | "non_nodule"
    sop_uid: str
    z_mm: float
    column: int
    row: int

    def __post_init__(self) -> None:
        if self.kind not in ("small_nodule", "non_nodule"):
            raise ValueError("PointMark.kind must be small_nodule or non_nodule")


@dataclass(frozen=True, slots=True)
class ReadingFile:
    """Everything one LIDC reading file holds: each reader's nodules and point marks."""

    series_uid: str
    study_uid: str
    readers: tuple[str, ...]
    nodules: tuple[ReaderNodule, ...]
    points: tuple[PointMark, ...]


@dataclass(frozen=True, slots=True)
class BoxMark:
    """A PASCAL VOC bounding box on one slice (Lung-PET-CT-Dx: file name = SOPInstanceUID).

    Pixel coordinates, inclusive, ``x`` along columns and ``y`` along rows.
    """

    sop_uid: str
    label: str
    xmin: int
    ymin: int
    xmax: int
    ymax: int

    def __post_init__(self) -> None:
        if self.xmax < self.xmin or self.ymax < self.ymin:
            raise ValueError("BoxMark needs xmin <= xmax and ymin <= ymax")


@dataclass(frozen=True, slots=True)
class SliceRegion:
    """The readers' outlines of one lesion on one slice, as LPS polygons (x, y)."""

    z_mm: float
    polygons: tuple[tuple[tuple[float, float], ...], ...]


@dataclass(frozen=True, slots=True)
class LesionTruth:
    """One reference lesion: where it is, how large the readers found it, how many agree.

    ``diameter_mm`` is the readers' mean of each reader's longest axial diameter
    on the slice of that reader's largest extent (the LIDC/pylidc convention and
    Fleischner 2017's long axis); ``n_readers`` how many readers outlined it.
    """

    lesion_id: str
    source: str  # "lidc" | "voc"
    centre_lps: tuple[float, float, float]
    extent_min_lps: tuple[float, float, float]
    extent_max_lps: tuple[float, float, float]
    diameter_mm: float
    reader_diameters_mm: tuple[float, ...]
    n_readers: int
    regions: tuple[SliceRegion, ...]
    slice_spacing_mm: float
    malignancy: float | None = None  # readers' mean LIDC malignancy rating (1-5)
    texture: float | None = None  # readers' mean LIDC texture: 1 ground glass .. 5 solid

    @property
    def radius_mm(self) -> float:
        return self.diameter_mm / 2.0

    def to_json(self) -> dict[str, Any]:
        return {
            "lesion_id": self.lesion_id, "source": self.source,
            "centre_lps": [round(v, 1) for v in self.centre_lps],
            "extent_min_lps": [round(v, 1) for v in self.extent_min_lps],
            "extent_max_lps": [round(v, 1) for v in self.extent_max_lps],
            "diameter_mm": round(self.diameter_mm, 1),
            "reader_diameters_mm": [round(v, 1) for v in self.reader_diameters_mm],
            "n_readers": self.n_readers, "malignancy": self.malignancy,
            "texture": self.texture,
        }


@dataclass(frozen=True, slots=True)
class CaseTruth:
    """The reference standard of one labelled real case."""

    name: str
    series_dir: str  # folder of the series the marks refer to
    lesions: tuple[LesionTruth, ...]
    irrelevant_lps: tuple[tuple[float, float, float], ...] = ()  # point marks (LUNA16 sense)
    n_readers: int = 1
    source: str = ""


@dataclass(frozen=True, slots=True)
class Detection:
    """One lesion candidate of the analyzer, in patient space."""

    centre_lps: tuple[float, float, float]
    score: float
    long_axis_mm: float
    short_axis_mm: float

    @property
    def radius_mm(self) -> float:
        return self.long_axis_mm / 2.0


@dataclass(frozen=True, slots=True)
class LesionOutcome:
    """A reference lesion and the best candidate that hit it (None: missed at any score)."""

    truth: LesionTruth
    hit: Detection | None


@dataclass(frozen=True, slots=True)
class RealCaseResult:
    """What the analyzer said on one labelled real case."""

    name: str
    series_uid: str
    kernel: str
    slice_mm: float | None
    truth: CaseTruth
    detections: tuple[Detection, ...]
    outcomes: tuple[LesionOutcome, ...]
    probabilities: dict[str, float | None]
    notes: dict[str, str] = field(default_factory=dict)
    conditions: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str = ""
