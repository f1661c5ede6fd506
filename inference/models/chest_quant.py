"""``chest_quant``: the default model, a quantitative chest CT analyzer with no weights.

It needs nothing downloaded, so it is always installed. It scores the findings
that measurements support (``inference.analyzer.mapping.RULES``) and returns
every other finding of the vocabulary with probability None and the reason it
was not assessed. Its raw measurements go to ``ModelOutput.features`` for the
stacker.
"""

from __future__ import annotations

import logging
import time

from ctnode.settings import AnalyzerSettings, Settings
from inference.analyzer import analyze, assessed_keys, map_findings
from inference.analyzer.types import Analysis
from inference.models.base import Model
from inference.types import ModelOutput, ModelStatus
from series_selector.types import HUVolume

logger = logging.getLogger(__name__)


class ChestQuantModel(Model):
    """Quantitative chest CT analysis mapped to findings through literature thresholds."""

    name = "chest_quant"
    version = "0.2.0"

    def __init__(self, settings: AnalyzerSettings | None = None) -> None:
        self._settings = settings if settings is not None else AnalyzerSettings()

    @classmethod
    def from_settings(cls, settings: Settings) -> ChestQuantModel:
        """The model as the ensemble builds it: thresholds from ``inference.analyzer``."""
        return cls(settings.inference.analyzer)

    @property
    def status(self) -> ModelStatus:
        return ModelStatus(
            name=self.name,
            version=self.version,
            weights_installed=True,
            findings=assessed_keys(),
            description="Quantitative chest CT analyzer (threshold/morphology image "
            "processing, literature thresholds); needs no weights.",
        )

    def predict(self, volume: HUVolume) -> ModelOutput:
        """Analyse one volume. Raises NotChestError when it holds no lungs."""
        t0 = time.perf_counter()
        analysis = analyze(volume, self._settings)
        seconds = time.perf_counter() - t0
        logger.info("chest_quant on series %s: %.1f s", volume.series_uid or "?", seconds)
        return self.output(analysis, seconds)

    def output(self, analysis: Analysis, seconds: float) -> ModelOutput:
        """The model output of an analysis already made (by ``predict``, or a cache of
        analyses such as the test session's): findings mapped, measures as features."""
        findings = map_findings(analysis, self._settings)
        # The stacker names features "<model>.f.<name>": no model prefix here.
        features = {
            k: float(m.value)
            for k, m in sorted(analysis.measures.items())
            if m.value is not None
        }
        return ModelOutput(model=self.status, findings=findings, features=features,
                           seconds=seconds, conditions=analysis.conditions)
