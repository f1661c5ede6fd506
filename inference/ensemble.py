"""The ensemble: the installed models plus the stacker, built once per process.

Models load their weights when the ensemble is built (start-up), never per
request. A model whose weights are missing is kept in the list so that
``/health`` and ``model_versions`` say so, but it is not run.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ctnode.settings import Settings
from inference.errors import InferenceError
from inference.models.base import Model
from inference.stacker import LightGBMStacker, MaxFindingStacker, StackedPrediction, Stacker
from inference.types import ModelOutput, ModelStatus
from series_selector.types import HUVolume

logger = logging.getLogger(__name__)

# name -> "module:Class"; a model is added here and enabled in settings.
MODEL_REGISTRY: dict[str, str] = {
    "chest_quant": "inference.models.chest_quant:ChestQuantModel",
}

STACKER_FILE = "stacker_lightgbm.txt"


@dataclass(frozen=True, slots=True)
class EnsembleOutput:
    """Every model's output and the stacked prediction."""

    outputs: tuple[ModelOutput, ...]
    stacked: StackedPrediction
    model_seconds: dict[str, float]


class Ensemble:
    """Runs every installed model on a volume and stacks their outputs."""

    def __init__(self, models: Sequence[Model], stacker: Stacker) -> None:
        if not models:
            raise ValueError("an ensemble needs at least one model")
        self.models = tuple(models)
        self.stacker = stacker

    @property
    def statuses(self) -> tuple[ModelStatus, ...]:
        return tuple(m.status for m in self.models)

    def run(self, volume: HUVolume) -> EnsembleOutput:
        runnable = [m for m in self.models if m.status.weights_installed]
        if not runnable:
            raise InferenceError(
                "no model with installed weights is enabled", code="no_model_installed"
            )
        outputs: list[ModelOutput] = []
        seconds: dict[str, float] = {}
        for model in runnable:
            t0 = time.perf_counter()
            outputs.append(model.predict(volume))
            seconds[model.status.name] = time.perf_counter() - t0
            logger.info("model %s ran in %.2f s", model.status.name, seconds[model.status.name])
        return EnsembleOutput(tuple(outputs), self.stacker.combine(outputs), seconds)


def _load_class(spec: str) -> Callable[[Settings], Model]:
    module_name, _, class_name = spec.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return lambda settings: cls.from_settings(settings)


def build_ensemble(settings: Settings) -> Ensemble:
    """The models enabled in settings, and the LightGBM stacker if one is installed."""
    models: list[Model] = []
    for name in settings.inference.enabled_models:
        if name not in MODEL_REGISTRY:
            raise ValueError(
                f"unknown model {name!r} in settings.inference.enabled_models; "
                f"known: {', '.join(MODEL_REGISTRY)}"
            )
        models.append(_load_class(MODEL_REGISTRY[name])(settings))
    stacker_path = settings.weights.directory / STACKER_FILE
    stacker: Stacker = (
        LightGBMStacker(stacker_path) if stacker_path.is_file() else MaxFindingStacker()
    )
    logger.info(
        "ensemble: models %s, stacker %s", [m.status.name for m in models], stacker.name
    )
    return Ensemble(models, stacker)
