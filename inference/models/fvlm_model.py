"""``fvlm`` in the ensemble: anatomy-region vision-language scoring (fVLM, Shui et al., ICLR 2025).

fVLM aligns each anatomical region of a chest CT with the part of the report
that describes it. At inference a crop around each region goes through a 3-D
ViT (``inference.models.fvlm``); a learned query per region turns the region's
tokens into an embedding that is compared with the embeddings of a "present"
and an "absent" sentence for each finding of that region. A region seen in
several crops is averaged, as the published evaluation does.

This is the class the ensemble's registry names, with the published
preparation and evaluation crops and the model's status. It imports neither
torch nor MONAI: the network is built when a checkpoint loads
(``LearnedModel.from_settings``) and ``score`` imports torch when it runs it,
so a node without fVLM weights only asks this class for its status.

Regions come from our analyzer (lungs, heart, aorta) instead of
TotalSegmentator; the oesophagus is not segmented, so hiatal hernia is not
assessed. Each finding's result says which region scored it, and the SR names
that region as the finding site.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from inference.models.ctrate import CTRATE_TO_KEY, NOT_IN_CTRATE, NOT_IN_CTRATE_NOTE
from inference.models.learned import PromptedModel
from inference.models.regions import (
    MISSING_REGION_NOTE,
    REGION_NAMES,
    Regions,
    analyzer_regions,
    work_mask_on,
)
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
    from ctnode.settings import Settings
    from inference.models.fvlm import FVLMImage

logger = logging.getLogger(__name__)

_SHORT = {"Atelectasis": "Atelectatic", "Lung nodule": "Nodule", "Lung opacity": "Opacity",
          "Pulmonary fibrotic sequela": "Pulmonary fibrotic"}
_LUNG_ITEMS = ("Emphysema", "Atelectasis", "Lung nodule", "Lung opacity",
               "Pulmonary fibrotic sequela", "Pleural effusion", "Mosaic attenuation pattern",
               "Peribronchial thickening", "Consolidation", "Bronchiectasis",
               "Interlobular septal thickening")
FVLM_ITEMS: tuple[tuple[str, str], ...] = (
    *(("lung", n) for n in _LUNG_ITEMS),
    ("heart", "Cardiomegaly"), ("heart", "Pericardial effusion"),
    ("heart", "Coronary artery wall calcification"),
    ("esophagus", "Hiatal hernia"), ("aorta", "Arterial wall calcification"),
)
"""(region, CT-RATE finding) pairs the published evaluation scores."""


def fvlm_prompt(name: str) -> tuple[str, str]:
    """(present, absent) sentences of a CT-RATE finding as fVLM's evaluation words them."""
    short = _SHORT.get(name, name)
    return f"{short}.", f"Not {short}."


@dataclass(frozen=True, slots=True)
class FVLMPreprocessing:
    """The published data preparation and evaluation crops (``data/*.py``, ``eval.py``)."""

    spacing_mm: tuple[float, float, float] = (3.0, 1.0, 1.0)  # S, P, L
    hu_range: tuple[float, float] = (-1150.0, 350.0)
    margin: tuple[int, int, int] = (5, 20, 20)  # around all regions, in grid voxels
    min_size: tuple[int, int, int] = (112, 256, 352)
    roi: tuple[int, int, int] = (112, 288, 352)
    edge_margin: int = 2  # a region within this of a crop's edge is incomplete there
    min_fraction: float = 0.9  # a region is used in a crop holding this much of it


@dataclass(frozen=True, slots=True, eq=False)
class _Prepared:
    image: np.ndarray  # [S, P, L] in [0, 1], cropped around the regions and padded
    masks: dict[str, np.ndarray]  # same grid


def _window(mask: np.ndarray, shape: tuple[int, ...], roi: tuple[int, int, int]
            ) -> tuple[slice, ...]:
    """fVLM's crop around a region: at least ``roi``, the whole region when larger."""
    idx = np.nonzero(mask)
    out = []
    for k in range(3):
        lo, hi = int(idx[k].min()), int(idx[k].max())
        size = max(roi[k], hi - lo)
        start = max(0, (lo + hi) // 2 - size // 2)
        end = min(shape[k], start + size)
        if end - start < size:
            start = max(0, end - size)
        out.append(slice(start, end))
    return tuple(out)


def _pad_to_multiple(a: np.ndarray, k: tuple[int, int, int]) -> np.ndarray:
    pads = [(0, (-n) % m) for n, m in zip(a.shape, k, strict=True)]
    return np.pad(a, pads) if any(p[1] for p in pads) else a


class FVLMModel(PromptedModel):
    """fVLM region scorer in the ensemble (see module doc)."""

    name = "fvlm"
    prep: ClassVar[FVLMPreprocessing] = FVLMPreprocessing()
    _analyzer = None

    def after_load(self, settings: Settings) -> None:
        self._analyzer = settings.inference.analyzer
        super().after_load(settings)

    @property
    def installed(self) -> bool:
        return self.net is not None and self.prompts is not None

    @property
    def findings(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(CTRATE_TO_KEY[n] for r, n in FVLM_ITEMS
                                   if r not in MISSING_REGION_NOTE))

    def describe(self) -> str:
        return "fVLM anatomy-region vision-language scorer (regions from the node's analyzer)"

    @property
    def reason(self) -> str:
        return self.prompt_reason if self.net is not None else super().reason

    @property
    def feature_version(self) -> str:
        return f"{self.version}+regions-analyzer"

    def prepare(self, volume: HUVolume, regions: Regions) -> _Prepared:
        """The published preparation: orientation, 3 x 1 x 1 mm, intensity, region crop, pad."""
        p = self.prep
        oriented = orient_lps(volume)
        size = resized_shape(oriented.voxels.shape, oriented.spacing, p.spacing_mm)
        full = (Window(0, size[0], 0, 0), Window(0, size[1], 0, 0), Window(0, size[2], 0, 0))
        lo_hu, hi_hu = p.hu_range
        image = resize_crop(oriented.voxels, size, full, 0.0)  # resized in HU, then windowed
        image = np.clip((image - lo_hu) / (hi_hu - lo_hu), 0.0, 1.0)
        masks = {r: work_mask_on(m, regions.grid.factors, oriented, size)
                 for r, m in regions.masks.items()}
        union = np.logical_or.reduce([m for m in masks.values()])
        idx = np.nonzero(union)
        box = tuple(slice(max(0, int(idx[k].min()) - p.margin[k]),
                          min(size[k], int(idx[k].max()) + p.margin[k])) for k in range(3))
        pads = [centre_window(box[k].stop - box[k].start, max(p.min_size[k],
                                                               box[k].stop - box[k].start))
                for k in range(3)]
        pad_width = [(w.before, w.after) for w in pads]
        image = np.pad(image[box], pad_width).astype(np.float32)
        masks = {r: np.pad(m[box], pad_width) for r, m in masks.items()}
        return _Prepared(image, masks)

    def score(self, prepared: _Prepared) -> dict[tuple[str, str], float]:
        """Mean P(present) per (region, finding key) over the crops that held the region."""
        import torch
        import torch.nn.functional as F

        net: FVLMImage = self.require()  # type: ignore[assignment]
        assert self.prompts is not None
        c, p = net.config, self.prep
        sums: dict[tuple[str, str], list[float]] = {}
        whole = {r: int(m.sum()) for r, m in prepared.masks.items()}
        done: set[str] = set()  # as published: a region scored in an earlier crop gets no own
        for centred in (r for r in REGION_NAMES if r in prepared.masks):
            if centred in done:
                continue
            window = _window(prepared.masks[centred], prepared.image.shape, p.roi)
            crop = _pad_to_multiple(prepared.image[window], c.patch_size)
            with torch.inference_mode():
                levels = net.visual_encoder(torch.from_numpy(crop)[None, None].to(self.device))
            for region, mask in prepared.masks.items():
                sub = _pad_to_multiple(mask[window], c.patch_size)
                if region != centred and not self._complete(sub, whole[region]):
                    continue
                done.add(region)
                table = self.prompts.select(region)
                if not table:
                    continue
                tokens = torch.from_numpy(F.max_pool3d(
                    torch.from_numpy(sub.astype(np.float32))[None], c.patch_size,
                    c.patch_size).flatten().numpy() > 0).to(self.device)
                with torch.inference_mode():
                    feature = net.region_feature(levels, tokens, REGION_NAMES.index(region))
                    keys = list(table)
                    emb = torch.from_numpy(np.stack([table[k] for k in keys])).to(feature)
                    probs = net.probabilities(feature, emb).cpu().numpy()
                for key, prob in zip(keys, probs.tolist(), strict=True):
                    sums.setdefault((region, key), []).append(float(prob))
        return {k: float(np.mean(v)) for k, v in sums.items()}

    def _complete(self, sub: np.ndarray, whole: int) -> bool:
        m = self.prep.edge_margin
        edges = np.zeros_like(sub)
        edges[:m] = edges[-m:] = True
        edges[:, :m] = edges[:, -m:] = True
        edges[:, :, :m] = edges[:, :, -m:] = True
        return not (sub & edges).any() and sub.sum() >= self.prep.min_fraction * whole

    def predict(self, volume: HUVolume) -> ModelOutput:
        self.require()
        t0 = time.perf_counter()
        regions = analyzer_regions(volume, self._analyzer)
        prepared = self.prepare(volume, regions)
        scores = self.score(prepared)
        findings: list[FindingResult] = []
        features: dict[str, float] = {}
        scored = {key: (region, prob) for (region, key), prob in scores.items()}
        for key, (region, prob) in sorted(scored.items()):
            findings.append(FindingResult(key, float(np.clip(prob, 0.0, 1.0)),
                                          note=f"fVLM, {region} region"))
            features[f"{region}.{key}"] = float(prob)
        for region, name in FVLM_ITEMS:
            key = CTRATE_TO_KEY[name]
            if key not in scored:
                why = MISSING_REGION_NOTE.get(region, f"the {region} region was not found")
                findings.append(FindingResult(key, None, note=f"fVLM: {why}"))
        listed = {f.key for f in findings}
        findings += [FindingResult(k, None, note="fVLM has no region prompt for this finding")
                     for k in CTRATE_TO_KEY.values() if k not in listed]
        findings += [FindingResult(k, None, note=NOT_IN_CTRATE_NOTE) for k in NOT_IN_CTRATE]
        seconds = time.perf_counter() - t0
        logger.info("fvlm on series %s: %d region scores in %.1f s", volume.series_uid or "?",
                    len(scores), seconds)
        return ModelOutput(self.status, tuple(findings), features, seconds)
