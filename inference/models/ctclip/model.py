"""``ctclip`` (zero-shot) and ``ctclip_classfine`` (supervised head): CT-CLIP in the ensemble.

Both run the published preprocessing (``ctclip_input``) and CTViT, and return
the 512-d image latent in ``ModelOutput.embedding`` (heads trained with
``ctnode train`` on it can score all 22 findings). They score the 18 CT-RATE
findings; the 4 critical extras stay unassessed with the reason.

- ``ctclip``: P(present) = softmax over the similarities with "X is present." and
  "X is not present." (scaled by exp(temperature)), as the published zero-shot
  evaluation computes it. The prompt embeddings come from a file made by
  ``ctnode weights embed-prompts ctclip`` for *this* checkpoint; without it the
  model gives only the latent (a feature encoder for heads).
- ``ctclip_classfine``: the published ClassFine head's sigmoid outputs.

The networks (``clip``) and torch are imported when a checkpoint loads and by
the methods that run them, never at import: a node without these weights only
asks the models for their status.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from inference.errors import ModelError
from inference.models.ctclip.preprocess import CTClipPreprocessing, ctclip_input
from inference.models.ctrate import CTRATE_KEYS, NOT_IN_CTRATE, NOT_IN_CTRATE_NOTE
from inference.models.learned import PromptedModel
from inference.models.prompts import PromptEmbeddings
from inference.types import FindingResult, ModelOutput
from series_selector.types import HUVolume

if TYPE_CHECKING:
    import torch

    from inference.models.ctclip.clip import CTCLIPClassFine, CTCLIPImage

logger = logging.getLogger(__name__)


def ctrate_findings(probs: dict[str, float], source: str) -> tuple[FindingResult, ...]:
    """The 18 CT-RATE findings with their probabilities, the 4 extras unassessed."""
    scored = tuple(FindingResult(k, float(np.clip(probs[k], 0.0, 1.0)), note=source)
                   for k in CTRATE_KEYS if k in probs)
    return scored + tuple(FindingResult(k, None, note=NOT_IN_CTRATE_NOTE) for k in NOT_IN_CTRATE)


class _CTClipBase(PromptedModel):
    """Preprocessing and the encoder pass shared by both CT-CLIP models."""

    prep: ClassVar[CTClipPreprocessing] = CTClipPreprocessing()

    def _input(self, volume: HUVolume) -> torch.Tensor:
        import torch

        return torch.from_numpy(ctclip_input(volume, self.prep)).to(self.device)

    @property
    def feature_version(self) -> str:
        return f"{self.version}+ctrate-480x480x240"


class CTClipModel(_CTClipBase):
    """CT-CLIP zero-shot scoring from stored prompt embeddings (see module doc)."""

    name = "ctclip"
    def check_prompts(self, prompts: PromptEmbeddings) -> None:
        if set(prompts.select("")) != set(CTRATE_KEYS):
            raise ValueError("the prompts must cover the 18 CT-RATE findings")

    @property
    def findings(self) -> tuple[str, ...]:
        return CTRATE_KEYS if self.prompts is not None else ()

    def describe(self) -> str:
        text = "CT-CLIP zero-shot (CTViT image encoder, CXR-BERT prompt embeddings)"
        if self.installed and self.prompts is None:
            text += f"; gives its 512-d latent only ({self.prompt_reason})"
        return text

    def predict(self, volume: HUVolume) -> ModelOutput:
        import torch

        net: CTCLIPImage = self.require()  # type: ignore[assignment]
        t0 = time.perf_counter()
        with torch.inference_mode():
            latent = net(self._input(volume))
            findings: tuple[FindingResult, ...] = ()
            if self.prompts is not None:
                table = self.prompts.select("")
                emb = torch.from_numpy(np.stack([table[k] for k in CTRATE_KEYS])).to(latent)
                probs = net.zero_shot(latent, emb)[0].cpu().numpy()
                findings = ctrate_findings(dict(zip(CTRATE_KEYS, probs.tolist(), strict=True)),
                                           "CT-CLIP zero-shot")
        embedding = latent[0].float().cpu().numpy()
        _check_finite(self.name, embedding)
        seconds = time.perf_counter() - t0
        logger.info("ctclip on series %s: %.1f s on %s", volume.series_uid or "?", seconds,
                    self.device)
        return ModelOutput(self.status, findings, {}, seconds, embedding=embedding)


class CTClipClassFineModel(_CTClipBase):
    """The published ClassFine classifier (18 CT-RATE findings)."""

    name = "ctclip_classfine"
    scored = CTRATE_KEYS

    def predict(self, volume: HUVolume) -> ModelOutput:
        import torch

        net: CTCLIPClassFine = self.require()  # type: ignore[assignment]
        t0 = time.perf_counter()
        with torch.inference_mode():
            probs, latent = net(self._input(volume))
        p = probs[0].float().cpu().numpy()
        if p.shape != (len(CTRATE_KEYS),):
            raise ModelError(f"ClassFine head gave {p.shape[0]} outputs, expected 18")
        embedding = latent[0].float().cpu().numpy()
        _check_finite(self.name, embedding)
        findings = ctrate_findings(dict(zip(CTRATE_KEYS, p.tolist(), strict=True)),
                                   "CT-CLIP ClassFine head")
        seconds = time.perf_counter() - t0
        return ModelOutput(self.status, findings, {}, seconds, embedding=embedding)


def _check_finite(name: str, vector: np.ndarray) -> None:
    if not np.all(np.isfinite(vector)):
        raise ModelError(f"{name} gave a non-finite image latent")
