"""The analyzer's stages, timed: grid and anatomy, then lung and central stages side by side."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

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
    stages depend only on it and run side by side (``settings.threads``).
    """
    clock = _StageClock()
    timed = clock.run
    grid = timed("grid", lambda: make_work_grid(volume, settings.work_spacing_mm,
                                                settings.work_slice_mm))
    anatomy = timed("anatomy", lambda: segment_anatomy(grid, settings))
    phase = timed("contrast_phase", lambda: detect_contrast_phase(grid, anatomy))
    ext = timed("extended_lungs", lambda: extended_lungs(anatomy, grid.spacing_zyx))
    med = timed("mediastinum", lambda: mediastinum(anatomy, ext))
    shared = [grid.hu, anatomy.body, anatomy.lung_left, anatomy.lung_right, anatomy.lungs,
              anatomy.airway, anatomy.free_gas, ext, med]
    enhanced = is_enhanced(phase[0])
    with _read_only(*shared):
        if settings.threads == 1:  # in this thread: plain tracebacks and profiles
            measures = {**_lung_measures(grid, anatomy, ext, med, settings, timed),
                        **_central_measures(grid, anatomy, ext, med, enhanced, timed)}
        else:
            with ThreadPoolExecutor(max_workers=2) as pool:
                lung_side = pool.submit(_lung_measures, grid, anatomy, ext, med, settings,
                                        timed)
                centre = pool.submit(_central_measures, grid, anatomy, ext, med, enhanced,
                                     timed)
                measures = {**lung_side.result(), **centre.result()}
    coverage = timed("coverage", lambda: assess_coverage(grid, anatomy, anatomy.edge))
    measures = gate_measures(measures, coverage)
    conditions = timed("conditions", lambda: image_conditions(grid, anatomy, coverage,
                                                                   phase))
    notes = [*anatomy.notes, *coverage.notes]
    logger.info("analysis stages (s): %s",
                ", ".join(f"{k} {v:.2f}" for k, v in clock.seconds.items()))
    return Analysis(grid=grid, anatomy=anatomy, measures=measures,
                    stage_seconds=clock.seconds, notes=tuple(notes), conditions=conditions)


Timed = Callable[[str, Callable[[], Any]], Any]


def _lung_measures(grid: WorkGrid, anatomy: Anatomy, ext: np.ndarray, med: np.ndarray,
                   settings: AnalyzerSettings, timed: Timed) -> dict[str, Measure]:
    """Pneumothorax, density, opacity, nodules and pleural fluid: the lungs and their walls."""
    measures: dict[str, Measure] = {}
    ptx = timed("pneumothorax", lambda: pneumothorax_mask(grid, anatomy))
    measures.update(pneumothorax_measures(grid, ptx))
    measures.update(timed("density", lambda: density_measures(grid, anatomy, ptx)))
    lesions = timed("nodules", lambda: find_lesions(grid, anatomy, settings, ext))
    measures.update(lesion_measures(grid, lesions, settings))
    lesion_voxels = lesion_mask(grid, lesions)
    opacity = timed("opacity_mask", lambda: opacity_mask(grid, anatomy))
    measures.update(timed("opacity", lambda: opacity_measures(
        grid, anatomy, opacity, mass_mask(grid, lesions))))
    measures.update(timed("pleura", lambda: effusion_measures(grid, anatomy, med,
                                                              lesion_voxels)))
    return measures


def _central_measures(grid: WorkGrid, anatomy: Anatomy, ext: np.ndarray, med: np.ndarray,
                      enhanced: bool, timed: Timed) -> dict[str, Measure]:
    """Metal, vertebrae, heart, aorta and calcium: the mediastinum and the skeleton."""
    measures: dict[str, Measure] = {}
    measures.update(timed("metal", lambda: metal_measures(grid, anatomy, enhanced)))
    bone = timed("bone", lambda: bone_mask(grid.hu, anatomy.body, grid.voxel_ml))
    spine = timed("spine", lambda: vertebral_bodies(grid, anatomy))
    measures.update(timed("vertebrae", lambda: vertebral_measures(grid, anatomy, spine)))
    heart, contrast = timed("heart", lambda: heart_mask(grid, anatomy, med, spine))
    measures.update(timed("heart_measures",
                          lambda: heart_measures(grid, anatomy, ext, heart, contrast)))
    aorta, asc, desc = timed("aorta", lambda: find_aorta(grid, anatomy, med, spine, heart,
                                                         contrast))
    measures.update(aorta_measures(grid, aorta, asc, desc))
    measures.update(timed("calcium", lambda: {
        **coronary_measures(grid, heart, med, bone | spine, aorta, contrast,
                            anatomy.body & ~med & ~ext, spine),
        **aortic_calcium_measures(grid, aorta, bone | spine, contrast, spine)}))
    return measures
