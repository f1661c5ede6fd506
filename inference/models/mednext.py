"""``mednext``: MedNeXt 3-D encoder with a 22-finding multi-label head.

MedNeXt (Roy et al., MICCAI 2023; MONAI ``MedNeXt``) is a ConvNeXt-style 3-D
network; the seed service used its encoder with a multi-label head for our 22
findings. Here: MONAI's stem, encoder stages, down-sampling blocks and
bottleneck (their parameter names), global average pooling and ``head``
(bottleneck channels -> 22). There is no public checkpoint for this task: a
site's checkpoint with this layout is registered with ``ctnode weights add
mednext FILE`` (loaded strictly first).

This module is the network (torch, MONAI), imported when a checkpoint loads
or is checked (``Family.builder``). The model in the ensemble, its
preprocessing and status are in ``inference.models.mednext_model`` (no torch),
re-exported here so that everything MedNeXt can be imported from one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from monai.networks.nets import MedNeXt
from torch import nn

from inference.findings import FINDING_KEYS
from inference.models.mednext_model import MedNeXtModel, MedNeXtPreprocessing, mednext_input

__all__ = ["MedNeXtClassifier", "MedNeXtConfig", "MedNeXtModel", "MedNeXtPreprocessing",
           "build_mednext", "mednext_input"]


@dataclass(frozen=True, slots=True)
class MedNeXtConfig:
    """Encoder sizes; ``MedNeXtConfig()`` is the node's architecture."""

    init_filters: int = 32
    kernel_size: int = 3
    expansion: int = 2
    blocks_down: tuple[int, ...] = (2, 2, 2, 2)
    blocks_bottleneck: int = 2
    classes: int = len(FINDING_KEYS)

    @property
    def width(self) -> int:
        """Channels of the bottleneck (the pooled feature length)."""
        return self.init_filters * 2 ** len(self.blocks_down)


class MedNeXtClassifier(nn.Module):
    """MONAI MedNeXt encoder + pooled linear head (see module doc)."""

    def __init__(self, c: MedNeXtConfig | None = None) -> None:
        super().__init__()
        c = c or MedNeXtConfig()
        self.config = c
        full = MedNeXt(spatial_dims=3, init_filters=c.init_filters, in_channels=1,
                       out_channels=c.classes, encoder_expansion_ratio=c.expansion,
                       bottleneck_expansion_ratio=c.expansion, kernel_size=c.kernel_size,
                       blocks_down=c.blocks_down, blocks_bottleneck=c.blocks_bottleneck,
                       blocks_up=c.blocks_down[::-1])
        self.stem = full.stem
        self.enc_stages = full.enc_stages
        self.down_blocks = full.down_blocks
        self.bottleneck = full.bottleneck
        self.head = nn.Linear(c.width, c.classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities (b, 22) and the pooled features (b, width)."""
        h = self.stem(x)
        for stage, down in zip(self.enc_stages, self.down_blocks, strict=True):
            h = down(stage(h))
        pooled = self.bottleneck(h).mean(dim=(2, 3, 4))
        return torch.sigmoid(self.head(pooled)), pooled


def build_mednext() -> MedNeXtClassifier:
    return MedNeXtClassifier(MedNeXtConfig())
