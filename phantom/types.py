"""Types that leave the phantom package: the specification, lesions, the phantom, a written study.

Lesions are placed in a phantom-relative way (a lung, a level between base and
apex, an anterior-posterior and a medial-lateral fraction) because the anatomy
varies with the seed; the generator resolves each to patient coordinates (LPS,
mm) and records them in the ground truth.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class Side(enum.StrEnum):
    """Patient side. Right is -x and left is +x in DICOM LPS."""

    RIGHT = "right"
    LEFT = "left"


class NoduleKind(enum.StrEnum):
    """Attenuation class of a lung nodule (Fleischner Society terms)."""

    SOLID = "solid"
    PART_SOLID = "part_solid"
    GROUND_GLASS = "ground_glass"


class MetalKind(enum.StrEnum):
    """Implanted devices the phantom can carry (sternal wires: after a median sternotomy)."""

    PACEMAKER = "pacemaker"
    PORT = "port"
    STERNAL_WIRES = "sternal_wires"


class ContrastPhase(enum.StrEnum):
    """Contrast phase of the scan, with the names of ``inference.types.ImageConditions``.

    ARTERIAL: CT angiography timing (aorta and left heart bright, about 300 HU;
    liver barely enhanced; dense undiluted contrast in the injected arm's veins
    and the SVC). VENOUS: portal venous phase, about 70 s (aorta, heart, portal
    vein and IVC all 150-180 HU; liver about 100-110 HU).
    """

    NON_CONTRAST = "non_contrast"
    ARTERIAL = "arterial"
    VENOUS = "venous"


class ArmsPosition(enum.StrEnum):
    """Arms raised above the head (usual chest CT) or down beside the chest (trauma, frail)."""

    UP = "up"
    DOWN = "down"


class Distribution(enum.StrEnum):
    """Craniocaudal predominance of a diffuse process (e.g. centrilobular emphysema is upper)."""

    UPPER = "upper"
    DIFFUSE = "diffuse"
    LOWER = "lower"


class CoronaryArtery(enum.StrEnum):
    """Coronary arteries the phantom draws on the heart surface."""

    LM = "lm"
    LAD = "lad"
    LCX = "lcx"
    RCA = "rca"


class AorticSegment(enum.StrEnum):
    """Segments of the thoracic aorta."""

    ASCENDING = "ascending"
    ARCH = "arch"
    DESCENDING = "descending"


class SeriesKind(enum.StrEnum):
    """What a written series is.

    LOCALIZER: one frontal projection scout. AXIAL: axial CT slices (ORIGINAL).
    CORONAL: coronal reformats (DERIVED\\SECONDARY\\REFORMATTED). MULTIFRAME: the axial
    slices as one Legacy Converted Enhanced CT instance. DOSE_SCREEN: a Secondary
    Capture page with dose numbers, as scanners add to a study.
    """

    LOCALIZER = "localizer"
    AXIAL = "axial"
    CORONAL = "coronal"
    MULTIFRAME = "multiframe"
    DOSE_SCREEN = "dose_screen"


def _coerce_enum(owner: str, name: str, value: Any, enum_type: type[enum.Enum]) -> Any:
    if isinstance(value, enum_type):
        return value
    if isinstance(value, str):
        try:
            return enum_type(value.lower())
        except ValueError:
            allowed = ", ".join(str(m.value) for m in enum_type)
            raise ValueError(f"{owner}.{name} must be one of {allowed}, not {value!r}") from None
    raise TypeError(f"{owner}.{name} must be a {enum_type.__name__} or str")


def _check_range(owner: str, name: str, value: Any, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{owner}.{name} must be a number")
    if not (lo <= float(value) <= hi) or not math.isfinite(float(value)):
        raise ValueError(f"{owner}.{name} must be within [{lo}, {hi}], not {value!r}")


def _check_point(owner: str, name: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, tuple) or len(value) != 3:
        raise TypeError(f"{owner}.{name} must be an (x, y, z) tuple in LPS mm or None")
    for v in value:
        _check_range(owner, name, v, -2000.0, 2000.0)


@dataclass(frozen=True, slots=True)
class LungSite:
    """A place in one lung, relative to that lung's extent on the phantom.

    ``level`` 0 is the lung base (lowest recess), 1 the apex; ``ap`` 0 is the
    most anterior and 1 the most posterior lung on that slice; ``lateral`` 0 is
    medial (mediastinal surface), 1 the lateral chest wall. The generator snaps
    the point inward so that a lesion of the requested size fits in the lung.
    """

    side: Side = Side.RIGHT
    level: float = 0.5
    ap: float = 0.5
    lateral: float = 0.6

    def __post_init__(self) -> None:
        object.__setattr__(self, "side", _coerce_enum("LungSite", "side", self.side, Side))
        for name in ("level", "ap", "lateral"):
            _check_range("LungSite", name, getattr(self, name), 0.0, 1.0)


@dataclass(frozen=True, slots=True)
class Nodule:
    """A round lung nodule; 30 mm or more is a lung mass (finding ``lung_mass``).

    ``solid_fraction`` is the diameter of the solid core over the whole diameter
    of a part-solid nodule. ``center_mm`` (LPS) overrides ``site`` when given.
    """

    diameter_mm: float = 8.0
    kind: NoduleKind = NoduleKind.SOLID
    site: LungSite = field(default_factory=LungSite)
    center_mm: tuple[float, float, float] | None = None
    solid_fraction: float = 0.5

    def __post_init__(self) -> None:
        _check_range("Nodule", "diameter_mm", self.diameter_mm, 3.0, 80.0)
        object.__setattr__(self, "kind", _coerce_enum("Nodule", "kind", self.kind, NoduleKind))
        if not isinstance(self.site, LungSite):
            raise TypeError("Nodule.site must be a LungSite")
        _check_point("Nodule", "center_mm", self.center_mm)
        _check_range("Nodule", "solid_fraction", self.solid_fraction, 0.1, 0.9)


@dataclass(frozen=True, slots=True)
class GroundGlass:
    """A patchy ground-glass opacity: hazy increase of lung attenuation, vessels still visible."""

    site: LungSite = field(default_factory=lambda: LungSite(Side.RIGHT, 0.6, 0.4, 0.6))
    extent_mm: float = 45.0
    hu: float = -600.0

    def __post_init__(self) -> None:
        if not isinstance(self.site, LungSite):
            raise TypeError("GroundGlass.site must be a LungSite")
        _check_range("GroundGlass", "extent_mm", self.extent_mm, 10.0, 150.0)
        _check_range("GroundGlass", "hu", self.hu, -750.0, -300.0)


@dataclass(frozen=True, slots=True)
class Consolidation:
    """Airspace consolidation: lung replaced by soft-tissue density, air bronchograms kept."""

    site: LungSite = field(default_factory=lambda: LungSite(Side.RIGHT, 0.2, 0.8, 0.6))
    extent_mm: float = 55.0
    hu: float = 35.0
    air_bronchograms: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.site, LungSite):
            raise TypeError("Consolidation.site must be a LungSite")
        _check_range("Consolidation", "extent_mm", self.extent_mm, 10.0, 150.0)
        _check_range("Consolidation", "hu", self.hu, -200.0, 100.0)
        if not isinstance(self.air_bronchograms, bool):
            raise TypeError("Consolidation.air_bronchograms must be a bool")


@dataclass(frozen=True, slots=True)
class PleuralEffusion:
    """Free pleural fluid of a given volume, layering in the dependent (posterior) pleural space."""

    side: Side = Side.RIGHT
    volume_ml: float = 300.0
    hu: float = 12.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "side", _coerce_enum("PleuralEffusion", "side", self.side, Side))
        _check_range("PleuralEffusion", "volume_ml", self.volume_ml, 10.0, 2000.0)
        _check_range("PleuralEffusion", "hu", self.hu, -20.0, 60.0)


@dataclass(frozen=True, slots=True)
class PericardialEffusion:
    """Fluid in the pericardial sac, a shell of the given thickness around the heart."""

    thickness_mm: float = 10.0
    hu: float = 15.0

    def __post_init__(self) -> None:
        _check_range("PericardialEffusion", "thickness_mm", self.thickness_mm, 2.0, 40.0)
        _check_range("PericardialEffusion", "hu", self.hu, -20.0, 60.0)


@dataclass(frozen=True, slots=True)
class Emphysema:
    """Low-attenuation clusters (about -990 HU) replacing ``fraction`` of the lung volume.

    The measured LAA%-950 (in the truth) is lower than ``fraction`` on coarse
    grids, because the scanner blur lifts the edges of small clusters above
    -950 HU, as it does on real scans.
    """

    fraction: float = 0.15
    distribution: Distribution = Distribution.UPPER
    cluster_mm: float = 12.0
    hu: float = -990.0

    def __post_init__(self) -> None:
        _check_range("Emphysema", "fraction", self.fraction, 0.005, 0.7)
        object.__setattr__(
            self,
            "distribution",
            _coerce_enum("Emphysema", "distribution", self.distribution, Distribution),
        )
        _check_range("Emphysema", "cluster_mm", self.cluster_mm, 2.0, 40.0)
        _check_range("Emphysema", "hu", self.hu, -1000.0, -951.0)


@dataclass(frozen=True, slots=True)
class CoronaryCalcification:
    """A calcified plaque on a coronary artery; ``position`` runs 0 (ostium) to 1 (distal)."""

    artery: CoronaryArtery = CoronaryArtery.LAD
    position: float = 0.3
    length_mm: float = 8.0
    diameter_mm: float = 3.5
    peak_hu: float = 600.0

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "artery",
            _coerce_enum("CoronaryCalcification", "artery", self.artery, CoronaryArtery),
        )
        _check_range("CoronaryCalcification", "position", self.position, 0.0, 1.0)
        _check_range("CoronaryCalcification", "length_mm", self.length_mm, 1.0, 60.0)
        _check_range("CoronaryCalcification", "diameter_mm", self.diameter_mm, 1.0, 8.0)
        _check_range("CoronaryCalcification", "peak_hu", self.peak_hu, 200.0, 2000.0)


@dataclass(frozen=True, slots=True)
class AorticCalcification:
    """Calcified plaques in the wall of one aortic segment."""

    segment: AorticSegment = AorticSegment.ARCH
    n_plaques: int = 3
    size_mm: float = 5.0
    peak_hu: float = 700.0

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "segment",
            _coerce_enum("AorticCalcification", "segment", self.segment, AorticSegment),
        )
        if isinstance(self.n_plaques, bool) or not isinstance(self.n_plaques, int):
            raise TypeError("AorticCalcification.n_plaques must be an int")
        if not 1 <= self.n_plaques <= 30:
            raise ValueError("AorticCalcification.n_plaques must be within [1, 30]")
        _check_range("AorticCalcification", "size_mm", self.size_mm, 2.0, 20.0)
        _check_range("AorticCalcification", "peak_hu", self.peak_hu, 200.0, 2000.0)


@dataclass(frozen=True, slots=True)
class Pneumothorax:
    """Free pleural air of a given volume in the non-dependent (anterior) pleural space."""

    side: Side = Side.RIGHT
    volume_ml: float = 250.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "side", _coerce_enum("Pneumothorax", "side", self.side, Side))
        _check_range("Pneumothorax", "volume_ml", self.volume_ml, 10.0, 2500.0)


@dataclass(frozen=True, slots=True)
class Metal:
    """An implanted device: pacemaker (left, with its lead), port (right, with its catheter)
    or sternal wires (six steel cerclages around the sternum after a median sternotomy).

    ``hu`` is the stored value of the device body (3071 = a 12-bit scanner's ceiling);
    thin wires are drawn with the attenuation of steel and partial-volumed by the grid.
    """

    kind: MetalKind = MetalKind.PACEMAKER
    hu: float = 3071.0
    streaks: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _coerce_enum("Metal", "kind", self.kind, MetalKind))
        _check_range("Metal", "hu", self.hu, 1500.0, 30000.0)
        if not isinstance(self.streaks, bool):
            raise TypeError("Metal.streaks must be a bool")


@dataclass(frozen=True, slots=True)
class LowBoneDensity:
    """All vertebral bodies get this mean trabecular attenuation (normal adult ~150-250 HU)."""

    trabecular_hu: float = 80.0

    def __post_init__(self) -> None:
        _check_range("LowBoneDensity", "trabecular_hu", self.trabecular_hu, -50.0, 300.0)


@dataclass(frozen=True, slots=True)
class Cardiomegaly:
    """Heart scaled to this cardiothoracic ratio (heart width over inner thoracic width)."""

    ctr: float = 0.6

    def __post_init__(self) -> None:
        _check_range("Cardiomegaly", "ctr", self.ctr, 0.3, 0.8)


@dataclass(frozen=True, slots=True)
class DilatedAorta:
    """Aortic diameters in mm; ``None`` keeps the seed's normal value for that segment."""

    ascending_diameter_mm: float | None = 48.0
    descending_diameter_mm: float | None = None

    def __post_init__(self) -> None:
        if self.ascending_diameter_mm is None and self.descending_diameter_mm is None:
            raise ValueError("DilatedAorta needs at least one diameter")
        if self.ascending_diameter_mm is not None:
            _check_range("DilatedAorta", "ascending_diameter_mm", self.ascending_diameter_mm,
                         20.0, 80.0)
        if self.descending_diameter_mm is not None:
            _check_range("DilatedAorta", "descending_diameter_mm", self.descending_diameter_mm,
                         15.0, 70.0)


class LymphStation(enum.StrEnum):
    """Mediastinal and hilar lymph node stations (IASLC map names)."""

    RIGHT_PARATRACHEAL = "4r"
    LEFT_PARATRACHEAL = "4l"
    AORTOPULMONARY = "5"
    SUBCARINAL = "7"
    RIGHT_HILAR = "10r"
    LEFT_HILAR = "10l"


@dataclass(frozen=True, slots=True)
class Atelectasis:
    """Airless, collapsed lung in the dependent base (compressive/passive atelectasis)."""

    side: Side = Side.RIGHT
    volume_ml: float = 120.0
    hu: float = 45.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "side", _coerce_enum("Atelectasis", "side", self.side, Side))
        _check_range("Atelectasis", "volume_ml", self.volume_ml, 10.0, 1500.0)
        _check_range("Atelectasis", "hu", self.hu, -100.0, 100.0)


@dataclass(frozen=True, slots=True)
class Lymphadenopathy:
    """Enlarged lymph nodes (short axis >= 10 mm is enlarged) at the given stations."""

    stations: tuple[LymphStation, ...] = (LymphStation.SUBCARINAL,)
    short_axis_mm: float = 16.0

    def __post_init__(self) -> None:
        if isinstance(self.stations, str | LymphStation):
            object.__setattr__(self, "stations", (self.stations,))
        if not isinstance(self.stations, tuple) or not self.stations:
            raise TypeError("Lymphadenopathy.stations must be a non-empty tuple of stations")
        object.__setattr__(self, "stations", tuple(
            _coerce_enum("Lymphadenopathy", "stations", v, LymphStation) for v in self.stations))
        _check_range("Lymphadenopathy", "short_axis_mm", self.short_axis_mm, 5.0, 40.0)


@dataclass(frozen=True, slots=True)
class HiatalHernia:
    """Stomach above the diaphragm behind the heart, with an air-fluid level."""

    diameter_mm: float = 50.0

    def __post_init__(self) -> None:
        _check_range("HiatalHernia", "diameter_mm", self.diameter_mm, 20.0, 100.0)


@dataclass(frozen=True, slots=True)
class MosaicAttenuation:
    """Geographic patches of lower lung attenuation (air trapping / hypoperfusion)."""

    fraction: float = 0.35
    delta_hu: float = 90.0
    patch_mm: float = 30.0

    def __post_init__(self) -> None:
        _check_range("MosaicAttenuation", "fraction", self.fraction, 0.05, 0.7)
        _check_range("MosaicAttenuation", "delta_hu", self.delta_hu, 30.0, 150.0)
        _check_range("MosaicAttenuation", "patch_mm", self.patch_mm, 10.0, 80.0)


@dataclass(frozen=True, slots=True)
class SeptalThickening:
    """Thickened interlobular septa: polygonal lines outlining secondary lobules, subpleural."""

    distribution: Distribution = Distribution.LOWER
    cell_mm: float = 16.0
    thickness_mm: float = 2.0
    depth_mm: float = 20.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "distribution", _coerce_enum(
            "SeptalThickening", "distribution", self.distribution, Distribution))
        _check_range("SeptalThickening", "cell_mm", self.cell_mm, 8.0, 30.0)
        _check_range("SeptalThickening", "thickness_mm", self.thickness_mm, 0.5, 5.0)
        _check_range("SeptalThickening", "depth_mm", self.depth_mm, 5.0, 80.0)


@dataclass(frozen=True, slots=True)
class FibroticSequela:
    """Subpleural basal reticulation with honeycomb cysts (fibrotic lung)."""

    distribution: Distribution = Distribution.LOWER
    depth_mm: float = 18.0
    cyst_mm: float = 6.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "distribution", _coerce_enum(
            "FibroticSequela", "distribution", self.distribution, Distribution))
        _check_range("FibroticSequela", "depth_mm", self.depth_mm, 5.0, 50.0)
        _check_range("FibroticSequela", "cyst_mm", self.cyst_mm, 3.0, 15.0)


@dataclass(frozen=True, slots=True)
class Bronchiectasis:
    """Dilated, non-tapering bronchi with thick walls within ``radius_mm`` of a lung site."""

    site: LungSite = field(default_factory=lambda: LungSite(Side.RIGHT, 0.25, 0.7, 0.5))
    radius_mm: float = 50.0
    dilation: float = 2.2

    def __post_init__(self) -> None:
        if not isinstance(self.site, LungSite):
            raise TypeError("Bronchiectasis.site must be a LungSite")
        _check_range("Bronchiectasis", "radius_mm", self.radius_mm, 15.0, 150.0)
        _check_range("Bronchiectasis", "dilation", self.dilation, 1.3, 4.0)


@dataclass(frozen=True, slots=True)
class PeribronchialThickening:
    """Bronchial walls thickened by ``wall_factor`` throughout both lungs."""

    wall_factor: float = 2.5

    def __post_init__(self) -> None:
        _check_range("PeribronchialThickening", "wall_factor", self.wall_factor, 1.5, 5.0)


Lesion = (Nodule | GroundGlass | Consolidation | PleuralEffusion | PericardialEffusion |
    Emphysema | CoronaryCalcification | AorticCalcification | Pneumothorax | Metal |
    LowBoneDensity | Cardiomegaly | DilatedAorta | Atelectasis | Lymphadenopathy |
    HiatalHernia | MosaicAttenuation | SeptalThickening | FibroticSequela | Bronchiectasis |
    PeribronchialThickening)
LESION_TYPES: tuple[type, ...] = (
    Nodule, GroundGlass, Consolidation, PleuralEffusion, PericardialEffusion, Emphysema,
    CoronaryCalcification, AorticCalcification, Pneumothorax, Metal, LowBoneDensity,
    Cardiomegaly, DilatedAorta, Atelectasis, Lymphadenopathy, HiatalHernia, MosaicAttenuation,
    SeptalThickening, FibroticSequela, Bronchiectasis, PeribronchialThickening,
)


@dataclass(frozen=True, slots=True)
class PhantomSpec:
    """What to generate. Anatomy is in physical mm; the scan range is centred on the chest.

    The default range (``z_extent_mm``) covers the whole chest from above the
    lung apices to below the posterior costophrenic recesses. ``n_slices``
    overrides the range; ``z_offset_mm`` shifts it (negative = towards the
    feet) to make partial-coverage studies. ``body_offset_mm`` (x, y) moves the
    patient off the isocentre.

    Scanner and patient variation (issue 12):

    - ``contrast`` / ``contrast_phase``: ``contrast=True`` alone is the arterial
      phase; ``contrast_phase`` ``"arterial"`` or ``"venous"`` sets the phase (and
      implies ``contrast``). ``oral_contrast_hu`` fills the stomach with positive
      oral contrast of that attenuation.
    - ``kvp``: tube voltage, 70-140. Iodine, calcium and bone read higher and fat
      lower at low kVp (see ``phantom.generate.kvp_factors`` for the sources);
      the header's KVP says it.
    - ``body_scale``: every anatomical length times this (0.6 is about a six-year-old
      child, 1.0 the adult phantom); lesion sizes stay as requested.
    - ``fat_mm``: subcutaneous fat thickness (the seed's is 6-35 mm; obese 40-90 mm,
      the skin then often touches or leaves the field of view).
    - ``arms``: ``"down"`` puts both arms (humerus, muscle, fat) beside the chest,
      usually cut by a 380 mm field of view as on real scans.
    - ``scoliosis_deg``: Cobb angle of a single thoracic curve (positive: convex to
      the patient's right, the common dextroscoliosis; negative: to the left).
    - ``aortic_arch``: ``"right"`` mirrors the arch and the descending aorta to the
      right of the spine (right-sided arch).
    """

    matrix: int = 160
    fov_mm: float = 380.0
    slice_spacing_mm: float = 2.5
    z_extent_mm: float = 290.0
    n_slices: int | None = None
    noise_sigma_hu: float = 15.0
    seed: int = 0
    lesions: tuple[Lesion, ...] = ()
    contrast: bool = False
    body_offset_mm: tuple[float, float] = (0.0, 0.0)
    z_offset_mm: float = 0.0
    contrast_phase: ContrastPhase | None = None
    oral_contrast_hu: float | None = None
    kvp: float = 120.0
    body_scale: float = 1.0
    fat_mm: float | None = None
    arms: ArmsPosition = ArmsPosition.UP
    scoliosis_deg: float = 0.0
    aortic_arch: Side = Side.LEFT

    def __post_init__(self) -> None:
        if isinstance(self.matrix, bool) or not isinstance(self.matrix, int):
            raise TypeError("PhantomSpec.matrix must be an int")
        if not 32 <= self.matrix <= 1024:
            raise ValueError("PhantomSpec.matrix must be within [32, 1024]")
        _check_range("PhantomSpec", "fov_mm", self.fov_mm, 300.0, 600.0)
        _check_range("PhantomSpec", "slice_spacing_mm", self.slice_spacing_mm, 0.3, 10.0)
        _check_range("PhantomSpec", "z_extent_mm", self.z_extent_mm, 10.0, 600.0)
        if self.n_slices is not None:
            if isinstance(self.n_slices, bool) or not isinstance(self.n_slices, int):
                raise TypeError("PhantomSpec.n_slices must be an int or None")
            if not 1 <= self.n_slices <= 2000:
                raise ValueError("PhantomSpec.n_slices must be within [1, 2000]")
        _check_range("PhantomSpec", "noise_sigma_hu", self.noise_sigma_hu, 0.0, 200.0)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise TypeError("PhantomSpec.seed must be a non-negative int")
        if isinstance(self.lesions, list):
            object.__setattr__(self, "lesions", tuple(self.lesions))
        if not isinstance(self.lesions, tuple):
            raise TypeError("PhantomSpec.lesions must be a tuple of lesions")
        for lesion in self.lesions:
            if not isinstance(lesion, LESION_TYPES):
                raise TypeError(f"PhantomSpec.lesions holds a {type(lesion).__name__}, "
                                "which is not a lesion type")
        if not isinstance(self.contrast, bool):
            raise TypeError("PhantomSpec.contrast must be a bool")
        if self.contrast_phase is None:
            phase = ContrastPhase.ARTERIAL if self.contrast else ContrastPhase.NON_CONTRAST
        else:
            phase = _coerce_enum("PhantomSpec", "contrast_phase", self.contrast_phase,
                                 ContrastPhase)
            if self.contrast and phase is ContrastPhase.NON_CONTRAST:
                raise ValueError("PhantomSpec: contrast=True contradicts contrast_phase "
                                 "'non_contrast'")
        object.__setattr__(self, "contrast_phase", phase)
        object.__setattr__(self, "contrast", phase is not ContrastPhase.NON_CONTRAST)
        if self.oral_contrast_hu is not None:
            _check_range("PhantomSpec", "oral_contrast_hu", self.oral_contrast_hu, 100.0, 3000.0)
        _check_range("PhantomSpec", "kvp", self.kvp, 70.0, 140.0)
        _check_range("PhantomSpec", "body_scale", self.body_scale, 0.45, 1.3)
        if self.fat_mm is not None:
            _check_range("PhantomSpec", "fat_mm", self.fat_mm, 2.0, 100.0)
        object.__setattr__(self, "arms", _coerce_enum("PhantomSpec", "arms", self.arms,
                                                      ArmsPosition))
        _check_range("PhantomSpec", "scoliosis_deg", self.scoliosis_deg, -60.0, 60.0)
        object.__setattr__(self, "aortic_arch", _coerce_enum("PhantomSpec", "aortic_arch",
                                                             self.aortic_arch, Side))
        if not isinstance(self.body_offset_mm, tuple) or len(self.body_offset_mm) != 2:
            raise TypeError("PhantomSpec.body_offset_mm must be an (x, y) tuple")
        for v in self.body_offset_mm:
            _check_range("PhantomSpec", "body_offset_mm", v, -80.0, 80.0)
        _check_range("PhantomSpec", "z_offset_mm", self.z_offset_mm, -400.0, 400.0)

    @property
    def num_slices(self) -> int:
        """Slices in the volume: ``n_slices`` or enough to cover ``z_extent_mm``."""
        if self.n_slices is not None:
            return self.n_slices
        return max(1, int(round(self.z_extent_mm / self.slice_spacing_mm)) + 1)

    @property
    def pixel_mm(self) -> float:
        """In-plane pixel spacing."""
        return self.fov_mm / self.matrix


@dataclass(frozen=True, slots=True, eq=False)
class Phantom:
    """A generated chest CT volume with its tissue labels and ground truth.

    ``hu`` and ``labels`` are indexed [z, y, x]; z grows towards the head.
    ``spacing`` is (x, y, z) mm; ``origin`` is the LPS centre of voxel [0, 0, 0];
    the orientation is the standard axial one (rows along +x = patient left,
    columns along +y = patient posterior), so voxel (k, j, i) sits at
    origin + (i * sx, j * sy, k * sz). ``truth`` is JSON-serialisable.
    """

    hu: np.ndarray
    labels: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    spec: PhantomSpec
    truth: dict[str, Any]

    def __post_init__(self) -> None:
        if not isinstance(self.hu, np.ndarray) or self.hu.dtype != np.int16 or self.hu.ndim != 3:
            raise TypeError("Phantom.hu must be a 3-D int16 numpy array")
        if not isinstance(self.labels, np.ndarray) or self.labels.shape != self.hu.shape:
            raise TypeError("Phantom.labels must be a numpy array shaped like hu")
        if len(self.spacing) != 3 or min(self.spacing) <= 0:
            raise ValueError("Phantom.spacing must be three positive numbers")

    @property
    def shape(self) -> tuple[int, int, int]:
        """(z, y, x) voxel counts."""
        return (int(self.hu.shape[0]), int(self.hu.shape[1]), int(self.hu.shape[2]))

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres."""
        return float(self.spacing[0] * self.spacing[1] * self.spacing[2]) / 1000.0

    def index_to_lps(self, z: float, y: float, x: float) -> tuple[float, float, float]:
        """Patient coordinates (mm) of a (z, y, x) voxel index."""
        return (
            self.origin[0] + x * self.spacing[0],
            self.origin[1] + y * self.spacing[1],
            self.origin[2] + z * self.spacing[2],
        )

    def lps_to_index(self, point: tuple[float, float, float]) -> tuple[int, int, int]:
        """Nearest (z, y, x) voxel index of an LPS point (may lie outside the volume)."""
        return (
            int(round((point[2] - self.origin[2]) / self.spacing[2])),
            int(round((point[1] - self.origin[1]) / self.spacing[1])),
            int(round((point[0] - self.origin[0]) / self.spacing[0])),
        )


@dataclass(frozen=True, slots=True)
class SeriesSpec:
    """One series to write. Axial thickness ``None`` = the phantom's native slices.

    Thicker axial series average consecutive native slices (as a scanner's
    thick reconstruction does); ``spacing_mm`` ``None`` = contiguous slices.
    ``gantry_tilt_deg`` resamples axial slices on planes tilted about the
    isocentre (column direction (0, cos t, sin t)) while slice positions still
    step along z, as a tilted acquisition stores them. ``padding_hu`` fills
    the corners outside the circular reconstruction field with that value and
    declares it as PixelPaddingValue (below -1024 HU needs signed pixels).
    """

    name: str
    kind: SeriesKind = SeriesKind.AXIAL
    thickness_mm: float | None = None
    spacing_mm: float | None = None
    kernel: str = "STANDARD"
    description: str = ""
    series_number: int = 1
    image_type: tuple[str, ...] | None = None
    gantry_tilt_deg: float = 0.0
    padding_hu: int | None = None

    def __post_init__(self) -> None:
        _check_range("SeriesSpec", "gantry_tilt_deg", self.gantry_tilt_deg, -30.0, 30.0)
        if self.padding_hu is not None:
            if isinstance(self.padding_hu, bool) or not isinstance(self.padding_hu, int):
                raise TypeError("SeriesSpec.padding_hu must be an int or None")
            if not -32768 <= self.padding_hu <= -1024:
                raise ValueError("SeriesSpec.padding_hu must be within [-32768, -1024] HU, "
                                 "below any real tissue")
        if self.image_type is not None and (
            not isinstance(self.image_type, tuple)
            or not all(isinstance(v, str) and v for v in self.image_type)
        ):
            raise TypeError("SeriesSpec.image_type must be a tuple of non-empty strings or None")
        if not isinstance(self.name, str) or not self.name or not self.name.isidentifier():
            raise ValueError("SeriesSpec.name must be a non-empty identifier (it names a folder)")
        object.__setattr__(self, "kind", _coerce_enum("SeriesSpec", "kind", self.kind, SeriesKind))
        if self.thickness_mm is not None:
            _check_range("SeriesSpec", "thickness_mm", self.thickness_mm, 0.3, 20.0)
        if self.spacing_mm is not None:
            _check_range("SeriesSpec", "spacing_mm", self.spacing_mm, 0.3, 20.0)
        if not isinstance(self.kernel, str) or not self.kernel or len(self.kernel) > 16:
            raise ValueError("SeriesSpec.kernel must be a 1-16 character string (DICOM SH)")
        if isinstance(self.series_number, bool) or not isinstance(self.series_number, int):
            raise TypeError("SeriesSpec.series_number must be an int")


@dataclass(frozen=True, slots=True)
class PatientInfo:
    """Patient module values. Names may be non-ASCII: the writer then uses ISO_IR 192."""

    name: str = "PHANTOM^CHEST"
    patient_id: str = ""
    birth_date: str = "19600101"
    sex: str = "O"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError("PatientInfo.name must be a str")
        if not isinstance(self.patient_id, str) or len(self.patient_id) > 64:
            raise ValueError("PatientInfo.patient_id must be a str of at most 64 characters")
        if self.birth_date and (len(self.birth_date) != 8 or not self.birth_date.isdigit()):
            raise ValueError("PatientInfo.birth_date must be YYYYMMDD or empty")
        if self.sex not in {"M", "F", "O", ""}:
            raise ValueError("PatientInfo.sex must be M, F, O or empty")


@dataclass(frozen=True, slots=True)
class WrittenSeries:
    """One series on disk."""

    name: str
    kind: SeriesKind
    series_uid: str
    series_number: int
    description: str
    kernel: str
    thickness_mm: float
    spacing_mm: float
    paths: tuple[Path, ...]


@dataclass(frozen=True, slots=True)
class WrittenStudy:
    """A study written by ``write_dicom_study``: where everything is and its UIDs."""

    root: Path
    study_uid: str
    frame_of_reference_uid: str
    transfer_syntax_uid: str
    series: tuple[WrittenSeries, ...]
    truth_path: Path

    def series_named(self, name: str) -> WrittenSeries:
        """The written series with that name; KeyError names the ones there are."""
        for s in self.series:
            if s.name == name:
                return s
        raise KeyError(f"no series {name!r}; written: {', '.join(s.name for s in self.series)}")

    @property
    def all_paths(self) -> tuple[Path, ...]:
        """Every written DICOM file, series by series."""
        return tuple(p for s in self.series for p in s.paths)


class Tissue(enum.IntEnum):
    """Label of every voxel in ``Phantom.labels`` (what the phantom put there)."""

    AIR = 0
    TABLE = 1
    FAT = 2
    MUSCLE = 3
    BONE_CORTEX = 4
    VERTEBRAL_TRABECULAR = 5
    BONE_MARROW = 6
    CARTILAGE = 7
    DISC = 8
    SPINAL_CANAL = 9
    LUNG = 10
    LUNG_VESSEL = 11
    AIRWAY_LUMEN = 12
    AIRWAY_WALL = 13
    MEDIASTINAL_FAT = 14
    MYOCARDIUM = 15
    BLOOD = 16
    AORTA = 17
    PULMONARY_ARTERY = 18
    PERICARDIUM = 19
    ESOPHAGUS = 20
    LIVER = 21
    SPLEEN = 22
    STOMACH = 23
    BOWEL_GAS = 24
    SOFT_TISSUE = 25
    NODULE_SOLID = 30
    NODULE_GROUND_GLASS = 31
    GROUND_GLASS = 32
    CONSOLIDATION = 33
    PLEURAL_EFFUSION = 34
    PERICARDIAL_EFFUSION = 35
    EMPHYSEMA = 36
    CORONARY_CALCIUM = 37
    AORTIC_CALCIUM = 38
    PNEUMOTHORAX = 39
    METAL = 40
    ATELECTASIS = 41
    LYMPH_NODE = 42
    HIATAL_HERNIA = 43
    MOSAIC_LOW = 44
    SEPTAL_LINE = 45
    FIBROSIS = 46
    HONEYCOMB_CYST = 47
    SVC = 48  # superior vena cava and brachiocephalic veins (dense contrast when arterial)
    IVC = 49  # inferior vena cava, through the liver into the right atrium
    PORTAL_VEIN = 50
    ORAL_CONTRAST = 51  # positive oral contrast pooled in the dependent stomach
