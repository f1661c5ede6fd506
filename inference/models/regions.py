"""Anatomical regions for the learned models, from our analyzer's anatomy.

fVLM was trained with TotalSegmentator masks of the lungs, heart, oesophagus
and aorta; the diffusion anomaly detector and MedNeXt need the lungs or the
body. The node has no TotalSegmentator: these regions come from the
quantitative analyzer's stages (``inference.analyzer``), on its ~2 mm working
grid. The analyzer does not segment the oesophagus, so that region is never
present (findings tied to it stay unassessed, with the reason).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ctnode.settings import AnalyzerSettings
from inference.analyzer.anatomy import segment_anatomy
from inference.analyzer.aorta import find_aorta
from inference.analyzer.grid import make_work_grid
from inference.analyzer.heart import heart_mask, mediastinum
from inference.analyzer.nodules import extended_lungs
from inference.analyzer.spine import vertebral_bodies
from inference.analyzer.types import Anatomy, WorkGrid
from inference.models.volume_prep import Oriented, nearest_source
from series_selector.types import HUVolume

logger = logging.getLogger(__name__)

REGION_NAMES = ("lung", "heart", "esophagus", "aorta")
"""fVLM's anatomies, in the order of its region queries and projections."""

MISSING_REGION_NOTE = {
    "esophagus": "the oesophagus is not segmented by the node's analyzer",
}


@dataclass(frozen=True, slots=True, eq=False)
class Regions:
    """Boolean region masks on the analyzer's working grid (absent regions not listed)."""

    grid: WorkGrid
    anatomy: Anatomy
    masks: dict[str, np.ndarray] = field(default_factory=dict)


def analyzer_regions(volume: HUVolume, settings: AnalyzerSettings | None = None, *,
                     organs: bool = True) -> Regions:
    """Lungs (and, with ``organs``, heart and aorta) of a volume. Raises NotChestError."""
    s = settings or AnalyzerSettings()
    grid = make_work_grid(volume, s.work_spacing_mm, s.work_slice_mm)
    anatomy = segment_anatomy(grid, s)
    masks = {"lung": anatomy.lungs}
    if organs:
        ext = extended_lungs(anatomy, grid.spacing_zyx)
        med = mediastinum(anatomy, ext)
        spine = vertebral_bodies(grid, anatomy)
        heart, contrast = heart_mask(grid, anatomy, med, spine)
        aorta, _, _ = find_aorta(grid, anatomy, med, spine, heart, contrast)
        masks["heart"] = heart
        masks["aorta"] = aorta
    present = {k: m for k, m in masks.items() if m.any()}
    logger.info("regions found: %s", ", ".join(present) or "none")
    return Regions(grid, anatomy, present)


def work_mask_on(mask: np.ndarray, factors: tuple[int, int, int], oriented: Oriented,
                 size: tuple[int, int, int]) -> np.ndarray:
    """A working-grid mask on the oriented volume resized (nearest) to ``size``.

    ``factors`` are the working grid's block sizes (z, y, x) of the source.
    """
    index = []
    for k in range(3):
        axis = oriented.axes[k]
        n_full = oriented.voxels.shape[k]
        o = nearest_source(n_full, size[k], 0, size[k])
        src = (n_full - 1 - o) if oriented.flips[k] else o
        index.append(np.minimum(src // factors[axis], mask.shape[axis] - 1))
    return np.transpose(mask, oriented.axes)[np.ix_(index[0], index[1], index[2])]
