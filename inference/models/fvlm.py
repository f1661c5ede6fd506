"""``fvlm``: anatomy-region vision-language scoring (fVLM, Shui et al., ICLR 2025).

fVLM aligns each anatomical region of a chest CT with the part of the report
that describes it. At inference a crop around each region goes through a 3-D
ViT-B (patches 16 x 16 x 32 on a 3 x 1 x 1 mm grid); a learned query per region
attends to the region's tokens of four depths (blocks 4, 7, 10 and the final
norm), is projected to 256-d and compared with the embeddings of a "present"
and an "absent" sentence for each finding of that region (softmax of the
similarities over the temperature). A region seen in several crops is
averaged, as the published evaluation does.

The parameter names and shapes are those of the published model
(``lavis/models/blip_models/blip_pretrain.py``, ``vit.py`` at ``FVLM_SOURCE``),
so its checkpoint loads strictly; the text encoder and ``text_proj`` are only
needed by ``ctnode weights embed-prompts`` and are dropped on load.

This module is the network (torch, MONAI), imported when a checkpoint loads
or is checked (``Family.builder``). The model in the ensemble, its prompts,
preparation and status are in ``inference.models.fvlm_model`` (no torch),
re-exported here so that everything fVLM can be imported from one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from monai.networks.blocks import MLPBlock, PatchEmbeddingBlock, SABlock
from torch import nn

from inference.models.checkpoint import CheckpointError, StateDict, compare_layout
from inference.models.fvlm_model import FVLM_ITEMS, FVLMModel, FVLMPreprocessing, fvlm_prompt
from inference.models.regions import REGION_NAMES

__all__ = ["FVLM_ITEMS", "FVLM_SOURCE", "FVLMConfig", "FVLMImage", "FVLMModel",
           "FVLMPreprocessing", "FVLMViT", "adapt_fvlm_state", "build_fvlm", "fvlm_prompt"]

FVLM_SOURCE = ("github.com/alibaba-damo-academy/fvlm@d768ec1546fb825fcc9ea9b3e7b2754a69f870c1 "
               "(lavis/models/blip_models/blip_pretrain.py, vit.py, patchembedding.py, "
               "transformerblock.py, selfattention.py; eval.py; data/*.py)")


@dataclass(frozen=True, slots=True)
class FVLMConfig:
    """Sizes of the fVLM image side; ``FVLMConfig()`` is the published one."""

    img_size: tuple[int, int, int] = (112, 256, 352)
    patch_size: tuple[int, int, int] = (16, 16, 32)
    hidden: int = 768
    mlp_dim: int = 3072
    layers: int = 12
    heads: int = 12
    embed_dim: int = 256
    query_heads: int = 4
    levels: tuple[int, ...] = (3, 6, 9)  # blocks whose outputs join the final norm's

    @property
    def grid(self) -> tuple[int, int, int]:
        a, b, c = (i // p for i, p in zip(self.img_size, self.patch_size, strict=True))
        return a, b, c


class _Block(nn.Module):
    """Pre-norm transformer block with MONAI's attention and MLP (fVLM's names)."""

    def __init__(self, c: FVLMConfig) -> None:
        super().__init__()
        self.mlp = MLPBlock(c.hidden, c.mlp_dim, 0.0)
        self.norm1 = nn.LayerNorm(c.hidden)
        self.attn = SABlock(c.hidden, c.heads, 0.0, qkv_bias=True)
        self.norm2 = nn.LayerNorm(c.hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class FVLMViT(nn.Module):
    """3-D ViT whose position embeddings are interpolated to the crop's token grid."""

    def __init__(self, c: FVLMConfig) -> None:
        super().__init__()
        self.config = c
        self.patch_embedding = PatchEmbeddingBlock(
            in_channels=1, img_size=c.img_size, patch_size=c.patch_size, hidden_size=c.hidden,
            num_heads=c.heads, proj_type="conv", pos_embed_type="learnable", dropout_rate=0.0)
        self.blocks = nn.ModuleList(_Block(c) for _ in range(c.layers))
        self.norm = nn.LayerNorm(c.hidden)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(b, 1, D, H, W) → the token maps of every level, (b, tokens, hidden) each."""
        conv = self.patch_embedding.patch_embeddings(x)
        grid = tuple(conv.shape[2:])
        tokens = conv.flatten(2).transpose(1, 2)
        pos: torch.Tensor = self.patch_embedding.position_embeddings
        if grid != self.config.grid:
            pos = pos.transpose(1, 2).reshape(1, self.config.hidden, *self.config.grid)
            pos = F.interpolate(pos, size=grid, mode="trilinear", align_corners=False)
            pos = pos.flatten(2).transpose(1, 2)
        h: torch.Tensor = tokens + pos
        levels = []
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i in self.config.levels:
                levels.append(h)
        levels.append(self.norm(h))
        return levels


class FVLMImage(nn.Module):
    """fVLM's image side: ViT, region queries, cross-attention, per-region projections."""

    def __init__(self, c: FVLMConfig | None = None) -> None:
        super().__init__()
        c = c or FVLMConfig()
        self.config = c
        self.visual_encoder = FVLMViT(c)
        self.temp = nn.Parameter(torch.tensor(0.07))
        self.attention = nn.MultiheadAttention(c.hidden, c.query_heads, dropout=0.1,
                                               batch_first=True)
        self.vision_projs = nn.ModuleList(nn.Linear(c.hidden, c.embed_dim) for _ in REGION_NAMES)
        self.query_tokens = nn.Parameter(torch.zeros(len(REGION_NAMES), c.hidden))

    def region_feature(self, levels: list[torch.Tensor], tokens: torch.Tensor,
                       region: int) -> torch.Tensor:
        """L2-normalised embedding (embed_dim,) of one region: its query over its tokens."""
        kv = torch.cat([level[0, tokens] for level in levels], dim=0)[None]
        query = self.query_tokens[region][None, None]
        out, _ = self.attention(query, kv, kv, need_weights=False)
        return F.normalize(self.vision_projs[region](out[0, 0]), dim=-1)

    def probabilities(self, feature: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        """P(present) per finding: softmax over (present, absent) similarities / temp."""
        return (torch.einsum("d,fkd->fk", feature, prompts) / self.temp).softmax(-1)[:, 0]


def build_fvlm() -> FVLMImage:
    return FVLMImage(FVLMConfig())


_TEXT_SIDE = ("text_encoder.", "text_proj.")


def adapt_fvlm_state(state: StateDict, module: nn.Module) -> StateDict:
    """Drop the text side of a published checkpoint (its projection's shape checked)."""
    assert isinstance(module, FVLMImage)
    c = module.config
    want = {"text_proj.weight": (c.embed_dim, c.hidden), "text_proj.bias": (c.embed_dim,)}
    report = compare_layout(want, {k: tuple(v.shape) for k, v in state.items() if k in want})
    if report.shape_mismatches:
        raise CheckpointError("fVLM checkpoint of another configuration: " + report.describe())
    return {k: v for k, v in state.items() if not k.startswith(_TEXT_SIDE)}
