"""Intermediate results of the analyzer: the working grid, the anatomy, the measures.

These stay inside ``inference.analyzer`` (the model turns them into
``inference.types`` objects), but they are still frozen so that a stage cannot
change what an earlier stage produced.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import numpy as np
from scipy import ndimage as ndi

from inference.types import Evidence, ImageConditions
from series_selector.types import HUVolume

T = TypeVar("T")


@dataclass(frozen=True, slots=True, eq=False)
class WorkGrid:
    """A block-averaged copy of the volume for anatomy, and how it maps back.

    Anatomy (masks, components, distances) does not need 0.7 mm voxels; working
    on ~2 mm voxels makes the whole analysis ~8x cheaper. ``factors`` are the
    integer block sizes (z, y, x); work voxel ``k`` covers full-resolution voxels
    ``k*f .. k*f+f-1`` along each axis.
    """

    hu: np.ndarray  # float32 [z, y, x]
    factors: tuple[int, int, int]
    source: HUVolume
    _smoothed: dict[float, np.ndarray] = field(default_factory=dict, init=False, repr=False)
    _derived: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _derived_lock: threading.Lock = field(default_factory=threading.Lock, init=False,
                                          repr=False)

    def derived(self, key: str, make: Callable[[], T]) -> T:
        """``make()``, made once per grid and kept under ``key``: a derived image that
        several stages read (``kernel.standard_equivalent``: the aorta and calcium in one
        lane of ``analyze``, the nodules' fine isolation in the other). The second lane
        to ask waits for the first one's copy instead of making its own."""
        with self._derived_lock:
            if key not in self._derived:
                self._derived[key] = make()
            return cast(T, self._derived[key])

    def smoothed(self, sigma_mm: float = 1.5) -> np.ndarray:
        """``hu`` smoothed by a Gaussian of ``sigma_mm``, made once per grid (read-only).

        Density bands 40-400 HU wide are only a few noise SDs wide on thin, sharp or
        low-dose slices, so the lung stages classify the local mean; four of them read
        the same 1.5 mm copy.
        """
        out = self._smoothed.get(sigma_mm)
        if out is None:
            out = ndi.gaussian_filter(self.hu, sigma=[max(0.3, sigma_mm / d)
                                                      for d in self.spacing_zyx])
            out.flags.writeable = False
            self._smoothed[sigma_mm] = out
        return out

    @property
    def shape(self) -> tuple[int, int, int]:
        z, y, x = self.hu.shape
        return int(z), int(y), int(x)

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        sx, sy, sz = self.source.spacing
        fz, fy, fx = self.factors
        return sz * fz, sy * fy, sx * fx

    @property
    def voxel_ml(self) -> float:
        dz, dy, dx = self.spacing_zyx
        return dz * dy * dx / 1000.0

    def full_index(self, z: float, y: float, x: float) -> tuple[float, float, float]:
        """Continuous full-resolution index of the centre of work voxel (z, y, x)."""
        fz, fy, fx = self.factors
        return z * fz + (fz - 1) / 2.0, y * fy + (fy - 1) / 2.0, x * fx + (fx - 1) / 2.0

    def to_lps(self, z: float, y: float, x: float) -> tuple[float, float, float]:
        """LPS position (mm) of the centre of work voxel (z, y, x)."""
        return self.source.index_to_lps(*self.full_index(z, y, x))


@dataclass(frozen=True, slots=True, eq=False)
class Anatomy:
    """Masks on the working grid (boolean arrays of ``WorkGrid.shape``)."""

    body: np.ndarray
    lung_left: np.ndarray  # aerated lung + what it encloses (vessels, small nodules)
    lung_right: np.ndarray
    airway: np.ndarray  # trachea and main bronchi (empty if not in the field of view)
    free_gas: np.ndarray  # air pockets without lung structure (bowel gas, pneumothorax)
    cranial_sign: int  # +1 if the slice index grows towards the head, else -1
    left_sign: int  # +1 if the column index grows towards patient left, else -1
    anterior_sign: int  # +1 if the row index grows towards anterior, else -1
    notes: tuple[str, ...] = ()
    edge: np.ndarray | None = None  # 2-D [y, x]: where the image ends (fov.image_edge)
    lungs: np.ndarray = field(init=False, repr=False)
    """Both lungs, made once: the stages ask for it over a hundred times per study."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "lungs", self.lung_left | self.lung_right)


@dataclass(frozen=True, slots=True, eq=False)
class Measure:
    """One named measurement with its evidence; ``value`` None when not measurable."""

    name: str
    value: float | None
    unit: str
    description: str = ""
    evidence: tuple[Evidence, ...] = ()
    note: str = ""


@dataclass(frozen=True, slots=True, eq=False)
class Analysis:
    """All measures of one volume, the anatomy and the per-stage timings."""

    grid: WorkGrid
    anatomy: Anatomy
    measures: dict[str, Measure] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    conditions: ImageConditions = field(default_factory=ImageConditions)

    def value(self, name: str) -> float | None:
        m = self.measures.get(name)
        return None if m is None else m.value


@dataclass(frozen=True, slots=True, eq=False)
class Lesion:
    """A nodule or mass candidate on the working grid.

    ``isolation`` is the thickest tissue in a shell 1.5-2.5 radii around the
    centre over the lesion's own inscribed radius: below ~0.7 nothing as thick
    leaves the blob (a nodule), near 1 it continues (a vessel, the hilum).
    ``lung_contact`` is the fraction of the lesion's outer shell that is
    aerated lung. ``mask`` covers ``box`` (z0, y0, x0, z1, y1, x1) of the grid.
    """

    centre: tuple[int, int, int]
    radius_mm: float
    isolation: float
    elongation: float
    lung_contact: float
    long_axis_mm: float
    short_axis_mm: float
    volume_ml: float
    mean_hu: float
    box: tuple[int, int, int, int, int, int]
    mask: np.ndarray
    score: float

    @property
    def mean_diameter_mm(self) -> float:
        """Average of long and short axial axes (Fleischner 2017 size convention)."""
        return (self.long_axis_mm + self.short_axis_mm) / 2.0
