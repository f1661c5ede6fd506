"""The interface every model of the ensemble implements."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, ClassVar

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

    A learned encoder returns its pooled feature vector in ``ModelOutput.embedding``
    (and scores no finding itself); heads trained with ``ctnode train`` turn it into
    finding probabilities (``inference.models.heads``), for any model.
    """

    #: Where ``inference.model_isolation = "auto"`` runs the model: "process" for
    #: learned models (heavy, third-party code: a hang is killed, memory is capped),
    #: "thread" for light in-house code.
    isolation: ClassVar[str] = "thread"

    @property
    def feature_version(self) -> str:
        """What the cached features depend on (``ctnode features`` keys its cache on it).

        Defaults to ``status.version``; a model whose outputs depend on more than
        its version (e.g. weights chosen by settings) returns a longer string.
        """
        return self.status.version

    def close(self) -> None:  # noqa: B027 - optional hook, most models hold nothing
        """Release what the model holds (processes, devices). Optional."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Model:
        """Build the model from the node's settings (weights folder, thresholds).

        Subclasses with settings override this; the default takes none.
        """
        return cls()

    @classmethod
    def weights_present(cls, settings: Settings) -> bool:
        """Whether the model's weight files are there (cheap: nothing loaded or hashed).

        A model without them never runs, so it needs no worker process (issue 17).
        """
        return True

    @property
    @abc.abstractmethod
    def status(self) -> ModelStatus:
        """Name, version, weights installed, and which findings it scores."""

    @abc.abstractmethod
    def predict(self, volume: HUVolume) -> ModelOutput:
        """Score one volume. Raises ``inference.errors.InferenceError`` on bad input."""
