"""``mednext`` in the ensemble: a 22-finding multi-label classifier on a body crop.

The class the ensemble's registry names. It imports neither torch nor MONAI:
the network (``inference.models.mednext``, MONAI's MedNeXt) is built when a
checkpoint loads (``LearnedModel.from_settings``), and ``predict`` imports
torch when it runs it. A node without MedNeXt weights only asks this class for
its status.

Preprocessing: orientation S/P/L, 3 x 2 x 2 mm, HU [-1000, 1000] / 1000, crop
to the body (the analyzer's body mask: no table or air around the patient),
then centre crop/pad with -1 (air) to 112 x 176 x 176 (336 x 352 x 352 mm).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from inference.analyzer.body import body_mask
from inference.analyzer.grid import make_work_grid
from inference.errors import ModelError
from inference.findings import FINDING_KEYS
from inference.models.learned import LearnedModel
from inference.models.regions import work_mask_on
from inference.models.volume_prep import (
    Window,
    centre_window,
    orient_lps,
    resize_crop,
    resized_shape,
)
from inference.types import FindingResult, ModelOutput
from series_selector.types import HUVolume

if TYPE_CHECKING:
    from inference.models.mednext import MedNeXtClassifier

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MedNeXtPreprocessing:
    spacing_mm: tuple[float, float, float] = (3.0, 2.0, 2.0)  # S, P, L
    size: tuple[int, int, int] = (112, 176, 176)
    hu_range: tuple[float, float] = (-1000.0, 1000.0)
    scale: float = 1000.0
    body_grid_mm: float = 4.0  # working grid of the body mask


def mednext_input(volume: HUVolume, prep: MedNeXtPreprocessing | None = None) -> np.ndarray:
    """(1, 1, D, H, W) float32 body crop of one volume (see module doc)."""
    p = prep or MedNeXtPreprocessing()
    oriented = orient_lps(volume)
    size = resized_shape(oriented.voxels.shape, oriented.spacing, p.spacing_mm)
    grid = make_work_grid(volume, p.body_grid_mm, p.body_grid_mm)
    body = work_mask_on(body_mask(grid.hu, grid.spacing_zyx), grid.factors, oriented, size)
    if not body.any():
        raise ModelError("no body found in the volume for MedNeXt's body crop")
    idx = np.nonzero(body)
    windows = []
    for k in range(3):
        lo, hi = int(idx[k].min()), int(idx[k].max()) + 1
        w = centre_window(hi - lo, p.size[k])
        windows.append(Window(lo + w.start, lo + w.end, w.before, w.after))
    lo_hu, hi_hu = p.hu_range
    out = resize_crop(oriented.voxels, size, (windows[0], windows[1], windows[2]),
                      pad_value=lo_hu, transform=partial(np.clip, a_min=lo_hu, a_max=hi_hu))
    out /= p.scale
    np.clip(out, lo_hu / p.scale, hi_hu / p.scale, out=out)  # interpolation rounding
    return out[None, None]


class MedNeXtModel(LearnedModel):
    """MedNeXt in the ensemble: all 22 findings from one forward pass."""

    name = "mednext"
    scored = FINDING_KEYS
    prep: ClassVar[MedNeXtPreprocessing] = MedNeXtPreprocessing()

    @property
    def feature_version(self) -> str:
        return f"{self.version}+body-112x176x176"

    def predict(self, volume: HUVolume) -> ModelOutput:
        import torch

        net: MedNeXtClassifier = self.require()  # type: ignore[assignment]
        t0 = time.perf_counter()
        x = torch.from_numpy(mednext_input(volume, self.prep)).to(self.device)
        with torch.inference_mode():
            probs, pooled = net(x)
        p = probs[0].float().cpu().numpy()
        embedding = pooled[0].float().cpu().numpy()
        if not (np.all(np.isfinite(p)) and np.all(np.isfinite(embedding))):
            raise ModelError("mednext gave non-finite outputs")
        findings = tuple(FindingResult(k, float(v), note="MedNeXt multi-label head")
                         for k, v in zip(FINDING_KEYS, p.tolist(), strict=True))
        seconds = time.perf_counter() - t0
        logger.info("mednext on series %s: %.1f s", volume.series_uid or "?", seconds)
        return ModelOutput(self.status, findings, {}, seconds, embedding=embedding)
