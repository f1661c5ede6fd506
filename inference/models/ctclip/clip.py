"""The image side of CT-CLIP and its ClassFine classifier, and how their checkpoints load.

CT-CLIP's published ``CTCLIP`` module holds the image encoder
(``visual_transformer``), a projection of the slice-averaged token map to the
512-d latent space (``to_visual_latent``, 294912 -> 512), the learned
``temperature`` and the text tower (``text_transformer``: CXR-BERT;
``to_text_latent``). The node never runs the text tower (prompt embeddings are
computed once by ``ctnode weights embed-prompts`` and stored as a file), so
``CTCLIPImage`` builds only the image side; the text-side tensors of a
checkpoint, and the CLOOB projections the published code always creates but
never uses (``*_extra``), are dropped on load after their shapes are checked.

The ClassFine checkpoint is the published ``ImageLatentsClassifier``: the whole
CT-CLIP under ``trained_model.`` plus ``classifier`` (512 -> 18) applied to
``relu(image latent)``.

Quirks handled when loading (``adapt_ctclip_state``): a text tower saved by an
older ``transformers`` carries ``text_transformer.embeddings.position_ids``
(newer versions reject it; we drop the text tower anyway), and checkpoints
exported from the image encoder alone have no ``visual_transformer.`` prefix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from inference.models.checkpoint import (
    CheckpointError,
    Layout,
    StateDict,
    compare_layout,
    layout_of,
)
from inference.models.ctclip.ctvit import CTViT, CTViTConfig

LATENT_DIM = 512
TEXT_DIM = 768  # CXR-BERT hidden size (the published dim_text)
CTRATE_CLASSES = 18

TEXT_PREFIXES = ("text_transformer.",)
"""Checkpoint keys of the text tower: present in the published files, never built here."""


def unused_keys(image_dim: int) -> Layout:
    """Published tensors the image side does not use, with their shapes (checked, then dropped)."""
    return {
        "to_text_latent.weight": (LATENT_DIM, TEXT_DIM),
        "to_text_latent_extra.weight": (LATENT_DIM, TEXT_DIM),
        "to_visual_latent_extra.weight": (LATENT_DIM, image_dim),
    }


class CTCLIPImage(nn.Module):
    """CT-CLIP's image side: CTViT, the latent projection and the temperature."""

    def __init__(self, config: CTViTConfig) -> None:
        super().__init__()
        self.config = config
        self.visual_transformer = CTViT(config)
        self.to_visual_latent = nn.Linear(config.pooled_dim, LATENT_DIM, bias=False)
        self.temperature = nn.Parameter(torch.tensor(1.0))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """(b, 1, frames, H, W) in [-1, 1] → L2-normalised image latents (b, 512)."""
        tokens = self.visual_transformer(video)
        pooled = tokens.mean(dim=1).flatten(1)  # average over slices, then (h, w, d)
        return F.normalize(self.to_visual_latent(pooled), dim=-1)

    def zero_shot(self, latent: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        """P(present) per finding from "present"/"not present" text latents.

        ``prompts`` is (findings, 2, 512): [:, 0] "X is present.", [:, 1] "X is not
        present."; the published evaluation takes the softmax over the pair of
        similarities scaled by exp(temperature).
        """
        logits = torch.einsum("bd,fkd->bfk", latent, prompts) * self.temperature.exp()
        return logits.softmax(dim=-1)[..., 0]


class CTCLIPClassFine(nn.Module):
    """The published ClassFine classifier: CT-CLIP under ``trained_model`` + a linear head."""

    def __init__(self, config: CTViTConfig, classes: int = CTRATE_CLASSES) -> None:
        super().__init__()
        self.trained_model = CTCLIPImage(config)
        self.classifier = nn.Linear(LATENT_DIM, classes)

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities (b, classes) and the image latent (b, 512) they came from."""
        latent = self.trained_model(video)
        return torch.sigmoid(self.classifier(F.relu(latent))), latent


def _text_and_unused(prefix: str, image_dim: int) -> tuple[tuple[str, ...], Layout]:
    return (tuple(prefix + p for p in TEXT_PREFIXES),
            {prefix + k: v for k, v in unused_keys(image_dim).items()})


def adapt_ctclip_state(state: StateDict, module: nn.Module) -> StateDict:
    """The checkpoint's tensors as ``module`` names them, text side and unused ones removed.

    ``module`` is a ``CTCLIPImage`` or a ``CTCLIPClassFine``. Raises
    ``CheckpointError`` when an unused published tensor has the wrong shape (it
    means the checkpoint was trained at another configuration).
    """
    is_classfine = isinstance(module, CTCLIPClassFine)
    image: CTCLIPImage = module.trained_model if is_classfine else module  # type: ignore[assignment]
    prefix = "trained_model." if is_classfine else ""
    state = dict(state)
    if not is_classfine and any(k.startswith("trained_model.") for k in state) \
            and "classifier.weight" in state:
        raise CheckpointError("this is a ClassFine checkpoint (trained_model.* + classifier.*); "
                              "install it for the ctclip_classfine model")
    expected = layout_of(module)
    vt = prefix + "visual_transformer."
    if not any(k.startswith(vt) for k in state) and any(
            (prefix + "visual_transformer." + k) in expected for k in state):
        # an image-encoder-only export: restore the prefix the full model uses
        state = {(vt + k if (vt + k) in expected else k): v for k, v in state.items()}
    text_prefixes, unused = _text_and_unused(prefix, image.config.pooled_dim)
    report = compare_layout(unused, {k: tuple(v.shape) for k, v in state.items() if k in unused})
    if report.shape_mismatches:
        raise CheckpointError("checkpoint was trained at another configuration: "
                              + report.describe())
    return {k: v for k, v in state.items()
            if k not in unused and not k.startswith(text_prefixes)}


def build_ctclip() -> CTCLIPImage:
    """The image side of CT-CLIP at the published configuration."""
    return CTCLIPImage(CTViTConfig.published())


def build_ctclip_classfine() -> CTCLIPClassFine:
    """The ClassFine classifier at the published configuration."""
    return CTCLIPClassFine(CTViTConfig.published())
