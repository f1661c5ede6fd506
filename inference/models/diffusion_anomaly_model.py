"""``diffusion_anomaly`` in the ensemble: reconstruction-based anomaly detection.

A denoising diffusion model trained only on normal lungs reconstructs a
study's lung slices towards normal; what it cannot reconstruct is the anomaly
(method, network and numerics: ``inference.models.diffusion_anomaly``). The
detector names no finding: it adds ``anomaly_*`` features for the stacker, an
embedding for heads trained with ``ctnode train``, and its regions as evidence
on the lung findings.

This is the class the ensemble's registry names. It imports neither torch nor
MONAI: the network is built when a checkpoint loads
(``LearnedModel.from_settings``) and ``predict`` imports the network's module
when it runs it, so a node without the detector's weights only asks this class
for its status.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import numpy as np

from inference.models.learned import LearnedModel
from inference.models.regions import analyzer_regions
from inference.types import FindingResult, ModelOutput
from series_selector.types import HUVolume

if TYPE_CHECKING:
    from ctnode.settings import Settings
    from inference.models.diffusion_anomaly import DiffusionAnomalyNet

logger = logging.getLogger(__name__)

LUNG_FINDINGS = (
    "emphysema", "atelectasis", "lung_nodule", "lung_opacity", "pulmonary_fibrotic_sequela",
    "mosaic_attenuation_pattern", "peribronchial_thickening", "consolidation",
    "bronchiectasis", "interlobular_septal_thickening", "lung_mass",
)
"""Findings inside the lung mask: the anomaly map is their evidence."""

EMBEDDING_NAMES = ("score", "z", "fraction_above", "p95", "p99_9", "mean",
                   "upper", "middle", "lower")


class DiffusionAnomalyModel(LearnedModel):
    """The anomaly detector in the ensemble (see module doc)."""

    name = "diffusion_anomaly"
    _analyzer = None

    def after_load(self, settings: Settings) -> None:
        self._analyzer = settings.inference.analyzer

    @property
    def installed(self) -> bool:
        if self.net is None:
            return False
        from inference.models.diffusion_anomaly import DiffusionAnomalyNet

        return isinstance(self.net, DiffusionAnomalyNet) and self.net.calibrated

    @property
    def reason(self) -> str:
        if self.net is not None:
            return "the checkpoint is not calibrated on normal studies (ctnode train --anomaly)"
        return super().reason

    @property
    def feature_version(self) -> str:
        return f"{self.version}+lung-slices"

    def describe(self) -> str:
        return ("Diffusion anomaly detector (2-D DDPM trained on normal lungs, partial "
                "noising + DDIM): anomaly score and map; names no finding by itself")

    def predict(self, volume: HUVolume) -> ModelOutput:
        from inference.models.diffusion_anomaly import (
            anomaly_evidence,
            anomaly_maps,
            lung_slices,
            summary,
        )

        net: DiffusionAnomalyNet = self.require()  # type: ignore[assignment]
        t0 = time.perf_counter()
        regions = analyzer_regions(volume, self._analyzer, organs=False)
        ls = lung_slices(volume, regions.masks["lung"], regions.grid.factors, net.config)
        maps = anomaly_maps(net, ls, self.device)
        stats = summary(maps, ls, net)
        evidence = anomaly_evidence(maps, ls, volume, float(net.pixel_threshold),
                                    net.config.top_regions)
        note = ("not scored by the anomaly detector alone: a head trained with `ctnode train` "
                "maps its anomaly features to this finding, with the anomaly map as evidence")
        findings = tuple(FindingResult(k, None, evidence=evidence, note=note)
                         for k in LUNG_FINDINGS)
        features = {f"anomaly_{k}": v for k, v in stats.items()}
        features["anomaly_volume_ml"] = float(sum(e.volume_ml or 0.0 for e in evidence))
        embedding = np.array([stats[k] for k in EMBEDDING_NAMES], dtype=np.float32)
        seconds = time.perf_counter() - t0
        logger.info("diffusion_anomaly on series %s: z %.2f, %d regions in %.1f s",
                    volume.series_uid or "?", stats["z"], len(evidence), seconds)
        return ModelOutput(self.status, findings, features, seconds, embedding=embedding)

