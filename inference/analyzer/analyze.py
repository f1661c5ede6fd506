"""The analyzer's stages, timed: grid and anatomy, then lung and central stages side by side."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Generic, TypeVar, cast

import numpy as np

from ctnode.settings import AnalyzerSettings
from inference.analyzer.anatomy import segment_anatomy
from inference.analyzer.aorta import aorta_measures, find_aorta
from inference.analyzer.bone import bone_mask
from inference.analyzer.calcium import aortic_calcium_measures, coronary_measures
from inference.analyzer.conditions import image_conditions
from inference.analyzer.contrast import detect_contrast_phase, is_enhanced
from inference.analyzer.fov import assess_coverage, gate_measures
from inference.analyzer.grid import make_work_grid
from inference.analyzer.heart import heart_mask, heart_measures, mediastinum
from inference.analyzer.metal import metal_measures
from inference.analyzer.nodules import (
    extended_lungs,
    find_lesions,
    lesion_mask,
    lesion_measures,
)
from inference.analyzer.parenchyma import (
    density_measures,
    mass_mask,
    opacity_mask,
    opacity_measures,
)
from inference.analyzer.pleura import (
    effusion_measures,
    pneumothorax_mask,
    pneumothorax_measures,
)
from inference.analyzer.spine import vertebral_bodies, vertebral_measures
from inference.analyzer.types import Analysis, Anatomy, Measure, WorkGrid
from series_selector.types import HUVolume

logger = logging.getLogger(__name__)


class _StageClock:
    """Per-stage wall time; stages running in different threads each record their own."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def run(self, stage: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        result = fn()
        self.seconds[stage] = time.perf_counter() - t0
        return result


@contextmanager
def _read_only(*arrays: np.ndarray) -> Iterator[None]:
    """Make shared masks read-only while stages run side by side.

    A stage that wrote into a shared mask would change what the other thread
    sees (and make results depend on timing); numpy raises instead.
    """
    flags = [a.flags.writeable for a in arrays]
    for a in arrays:
        a.flags.writeable = False
    try:
        yield
    finally:
        for a, was in zip(arrays, flags, strict=True):
            if was:
                a.flags.writeable = True


def analyze(volume: HUVolume, settings: AnalyzerSettings) -> Analysis:
    """Measure one chest CT volume. Raises NotChestError when no lungs are found.

    The anatomy is shared; after it, the lung stages and the mediastinal/bone
    stages depend only on it and run side by side (``settings.threads``). The contrast
    phase opens the lung lane, which ends with metal (the one stage that reads the
    phase); the extended lungs and the mediastinum open the central lane, which hands
    them over (``_Handoff``) to the lung lane's nodule and pleura stages: by then they
    are made, so neither lane waits in practice.
    """
    clock = _StageClock()
    timed = clock.run
    grid = timed("grid", lambda: make_work_grid(volume, settings.work_spacing_mm,
                                                settings.work_slice_mm))
    anatomy = timed("anatomy", lambda: segment_anatomy(grid, settings))
    phase: _Handoff[tuple[str, str]] = _Handoff()
    ext: _Handoff[np.ndarray] = _Handoff()
    med: _Handoff[np.ndarray] = _Handoff()

    def make_phase() -> None:
        with phase.making():
            phase.put(timed("contrast_phase", lambda: detect_contrast_phase(grid, anatomy)))

    def make_ext_and_med() -> None:
        with ext.making(), med.making():
            lungs = ext.put(timed("extended_lungs",
                                  lambda: extended_lungs(anatomy, grid.spacing_zyx)))
            med.put(timed("mediastinum", lambda: mediastinum(anatomy, lungs)))

    def lung_lane() -> tuple[dict[str, Measure], dict[str, Measure]]:
        make_phase()
        lung = _lung_measures(grid, anatomy, ext.get, med.get, settings, timed)
        metal = timed("metal", lambda: metal_measures(grid, anatomy,
                                                      is_enhanced(phase.get()[0])))
        return lung, metal

    def central_lane() -> dict[str, Measure]:
        return _central_measures(grid, anatomy, ext.get, med.get, timed)

    def making_central_lane() -> dict[str, Measure]:
        make_ext_and_med()
        return central_lane()

    shared = [grid.hu, anatomy.body, anatomy.lung_left, anatomy.lung_right, anatomy.lungs,
              anatomy.airway, anatomy.free_gas]
    with _read_only(*shared):
        if settings.threads == 1:  # in this thread: plain tracebacks and profiles
            make_ext_and_med()  # read by the lung lane
            (lung, metal), central = lung_lane(), central_lane()
        else:
            with ThreadPoolExecutor(max_workers=2) as pool:
                lung_side = pool.submit(lung_lane)
                centre = pool.submit(making_central_lane)
                (lung, metal), central = lung_side.result(), centre.result()
        measures = {**lung, **metal, **central}  # the order of the measures as ever
    coverage = timed("coverage", lambda: assess_coverage(grid, anatomy, anatomy.edge))
    measures = gate_measures(measures, coverage)
    conditions = timed("conditions", lambda: image_conditions(grid, anatomy, coverage,
                                                                   phase.get()))
    notes = [*anatomy.notes, *coverage.notes]
    logger.info("analysis stages (s): %s",
                ", ".join(f"{k} {v:.2f}" for k, v in clock.seconds.items()))
    return Analysis(grid=grid, anatomy=anatomy, measures=measures,
                    stage_seconds=clock.seconds, notes=tuple(notes), conditions=conditions)


T = TypeVar("T")


class _Handoff(Generic[T]):
    """A value one lane makes and the other reads: ``get`` waits until it is ``put``.

    Made inside ``making()``: if the maker raises, every ``get`` raises that error too
    instead of waiting for ever. A shared mask is put read-only (``_read_only``).
    """

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._value: T | None = None
        self._error: BaseException | None = None

    def put(self, value: T) -> T:
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
        self._value = value
        self._ready.set()
        return value

    @contextmanager
    def making(self) -> Iterator[None]:
        try:
            yield
        except BaseException as exc:
            if not self._ready.is_set():
                self._error = exc
                self._ready.set()
            raise

    def get(self) -> T:
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return cast(T, self._value)


Timed = Callable[[str, Callable[[], Any]], Any]


def _lung_measures(grid: WorkGrid, anatomy: Anatomy, ext: Callable[[], np.ndarray],
                   med: Callable[[], np.ndarray], settings: AnalyzerSettings, timed: Timed
                   ) -> dict[str, Measure]:
    """Pneumothorax, density, opacity, nodules and pleural fluid: the lungs and their walls.

    ``ext`` and ``med`` give the extended lungs and the mediastinum (``_Handoff.get``).
    """
    measures: dict[str, Measure] = {}
    ptx = timed("pneumothorax", lambda: pneumothorax_mask(grid, anatomy))
    measures.update(pneumothorax_measures(grid, ptx))
    measures.update(timed("density", lambda: density_measures(grid, anatomy, ptx)))
    lesions = timed("nodules", lambda: find_lesions(grid, anatomy, settings, ext()))
    measures.update(lesion_measures(grid, lesions, settings))
    lesion_voxels = lesion_mask(grid, lesions)
    opacity = timed("opacity_mask", lambda: opacity_mask(grid, anatomy))
    measures.update(timed("opacity", lambda: opacity_measures(
        grid, anatomy, opacity, mass_mask(grid, lesions))))
    measures.update(timed("pleura", lambda: effusion_measures(grid, anatomy, med(),
                                                              lesion_voxels)))
    return measures


def _central_measures(grid: WorkGrid, anatomy: Anatomy, ext: Callable[[], np.ndarray],
                      med: Callable[[], np.ndarray], timed: Timed) -> dict[str, Measure]:
    """Vertebrae, heart, aorta and calcium: the mediastinum and the skeleton (metal, which
    reads the contrast phase, runs in the lung lane)."""
    measures: dict[str, Measure] = {}
    bone = timed("bone", lambda: bone_mask(grid.hu, anatomy.body, grid.voxel_ml))
    spine = timed("spine", lambda: vertebral_bodies(grid, anatomy))
    measures.update(timed("vertebrae", lambda: vertebral_measures(grid, anatomy, spine)))
    heart, contrast = timed("heart", lambda: heart_mask(grid, anatomy, med(), spine))
    measures.update(timed("heart_measures",
                          lambda: heart_measures(grid, anatomy, ext(), heart, contrast)))
    aorta, asc, desc = timed("aorta", lambda: find_aorta(grid, anatomy, med(), spine, heart,
                                                         contrast))
    measures.update(aorta_measures(grid, aorta, asc, desc))
    measures.update(timed("calcium", lambda: {
        **coronary_measures(grid, heart, med(), bone | spine, aorta, contrast,
                            anatomy.body & ~med() & ~ext(), spine),
        **aortic_calcium_measures(grid, aorta, bone | spine, contrast, spine)}))
    return measures
