"""Small models for the tests of the ensemble, isolation and the ML loop.

``HistogramModel`` is a real (if simple) feature model: the lung-window HU
histogram of the volume as its embedding, cheap enough to run on a phantom
cohort in CI. The others misbehave on purpose: raise, hang, eat memory.
"""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np

from ctnode.settings import Settings
from inference.errors import NotChestError
from inference.models.base import Model
from inference.types import FindingResult, ModelOutput, ModelStatus
from series_selector.types import HUVolume


class HistogramModel(Model):
    """Embedding = fraction of body voxels in 32 HU bins from -1024 to +176 HU."""

    name = "hu_histogram"

    @property
    def status(self) -> ModelStatus:
        return ModelStatus(self.name, "1.0", True, (), "test feature model")

    def predict(self, volume: HUVolume) -> ModelOutput:
        v = volume.voxels[::2, ::2, ::2]
        body = v[v > -1024]
        hist, _ = np.histogram(body, bins=32, range=(-1024, 176))
        emb = (hist / max(body.size, 1)).astype(np.float32)
        return ModelOutput(self.status, (), {}, embedding=emb)


class _Scoring(Model):
    """Scores emphysema at 0.5 when it does not misbehave."""

    name = "scoring"

    @property
    def status(self) -> ModelStatus:
        return ModelStatus(self.name, "1.0", True, ("emphysema",))

    def _ok(self) -> ModelOutput:
        return ModelOutput(self.status, (FindingResult("emphysema", 0.5),))

    def predict(self, volume: HUVolume) -> ModelOutput:
        return self._ok()


class RaisingModel(_Scoring):
    name = "raising"

    def predict(self, volume: HUVolume) -> ModelOutput:
        raise RuntimeError("weights exploded")


class SlowModel(_Scoring):
    """Sleeps past any short time limit."""

    name = "slow"
    isolation: ClassVar[str] = "process"

    def predict(self, volume: HUVolume) -> ModelOutput:
        time.sleep(60)
        return self._ok()


class HungryModel(_Scoring):
    """Asks for 8 GB at once: past a small memory cap this is a MemoryError."""

    name = "hungry"
    isolation: ClassVar[str] = "process"

    def predict(self, volume: HUVolume) -> ModelOutput:
        block = np.ones(8 * 2**30, dtype=np.uint8)
        return ModelOutput(self.status, (FindingResult("emphysema", float(block[0]) / 2),))


class GoodProcessModel(_Scoring):
    """Runs in its own process (the round trip through the pipe); refuses a volume
    brighter than water as not a chest CT, as a model may (an input error)."""

    name = "good_process"
    isolation: ClassVar[str] = "process"

    @classmethod
    def from_settings(cls, settings: Settings) -> GoodProcessModel:
        return cls()

    def predict(self, volume: HUVolume) -> ModelOutput:
        if float(volume.voxels.mean()) > 0:
            raise NotChestError("no lungs in this volume")
        return ModelOutput(self.status, (FindingResult("emphysema", 0.25),),
                           {"mean_hu": float(volume.voxels.mean())},
                           embedding=np.arange(4, dtype=np.float32))
