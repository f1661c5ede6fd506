"""The interface every model of the ensemble implements."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING

from inference.types import ModelOutput, ModelStatus
from series_selector.types import HUVolume

if TYPE_CHECKING:
    from ctnode.settings import Settings


class Model(abc.ABC):
    """A model turns an HU volume into per-finding scores, features and evidence.

    Subclasses load their weights in ``__init__`` (never at call time, never from
    the network) and report in ``status`` whether the weights are installed. A
    model whose weights are missing still reports itself, and ``predict`` is not
    called: the stacker treats its outputs as missing.
    """

    @classmethod
    def from_settings(cls, settings: Settings) -> Model:
        """Build the model from the node's settings (weights folder, thresholds).

        Subclasses with settings override this; the default takes none.
        """
        return cls()

    @property
    @abc.abstractmethod
    def status(self) -> ModelStatus:
        """Name, version, weights installed, and which findings it scores."""

    @abc.abstractmethod
    def predict(self, volume: HUVolume) -> ModelOutput:
        """Score one volume. Raises ``inference.errors.InferenceError`` on bad input."""
