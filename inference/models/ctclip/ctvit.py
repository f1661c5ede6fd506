"""CTViT: the 3-D image encoder of CT-CLIP, with the published parameter layout.

CT-CLIP (Hamamci et al., arXiv 2403.17834) encodes a chest CT with a video
transformer: 10-slice x 20 x 20 voxel patches, four spatial then four temporal
transformer layers with a causal depth-wise convolution as position encoding,
and a cosine-similarity vector quantiser whose codes are the image tokens.

Every submodule here carries the attribute name and parameter shapes of the
published code (``transformer_maskgit/ctvit.py`` and ``attention.py`` at the
commit in ``CTVIT_SOURCE``, with ``vector-quantize-pytorch==1.1.2``), so the
published checkpoints load with ``strict=True``; ``tests/inference`` checks the
whole name/shape list against a fixture derived from that code. The module is
written for inference (no GAN, perceptual or commitment losses) and runs on any
device: nothing here names CUDA.

Two behaviours of the published code are kept on purpose, because the weights
were trained with them: keys and values of self-attention are computed from
the *un-normalised* input (only queries are layer-normed), and the temporal
transformer's position convolution reshapes its ``(b h w) t d`` tokens straight
to ``b t h w d`` (a raw reshape, not a transpose).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

CTVIT_SOURCE = (
    "github.com/ibrahimethemhamamci/CT-CLIP@a2a155c601987820433c01db69b64d701d3d229d "
    "(transformer_maskgit/transformer_maskgit/ctvit.py, attention.py); "
    "github.com/lucidrains/vector-quantize-pytorch@b16be13bd03b7e4005f30e1a03613f3dd988d931 (1.1.2)"
)


@dataclass(frozen=True, slots=True)
class CTViTConfig:
    """Sizes of a CTViT. ``published()`` is the configuration of the CT-CLIP checkpoints."""

    dim: int = 512
    codebook_size: int = 8192
    image_size: int = 480
    patch_size: int = 20
    temporal_patch_size: int = 10
    spatial_depth: int = 4
    temporal_depth: int = 4
    dim_head: int = 32
    heads: int = 8
    channels: int = 1
    frames: int = 240  # slices fed to the encoder (CT-CLIP's 240 x 1.5 mm)

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError("CTViTConfig.image_size must be a multiple of patch_size")
        if self.frames % self.temporal_patch_size:
            raise ValueError("CTViTConfig.frames must be a multiple of temporal_patch_size")

    @classmethod
    def published(cls) -> CTViTConfig:
        return cls()

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid (t, h, w)."""
        side = self.image_size // self.patch_size
        return self.frames // self.temporal_patch_size, side, side

    @property
    def pooled_dim(self) -> int:
        """Length of the flattened, slice-averaged token map CT-CLIP projects (h * w * dim)."""
        _, h, w = self.grid
        return h * w * self.dim


def _l2norm(t: torch.Tensor) -> torch.Tensor:
    return F.normalize(t, dim=-1)


class BiaslessLayerNorm(nn.Module):
    """Layer norm with a learned gain and a fixed zero bias (stored as buffer ``beta``)."""

    beta: torch.Tensor

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))
        self.register_buffer("beta", torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.gamma, self.beta)


class GEGLU(nn.Module):
    """Gated GELU: half the channels gate the other half."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = x.chunk(2, dim=-1)
        return F.gelu(gate) * x


def feed_forward(dim: int, mult: int = 4) -> nn.Sequential:
    """Norm, GEGLU expansion by 2/3 * mult, projection back (indices 0, 1, 4 hold weights)."""
    inner = int(mult * (2 / 3) * dim)
    return nn.Sequential(
        nn.LayerNorm(dim),
        nn.Linear(dim, inner * 2, bias=False),
        GEGLU(),
        nn.Dropout(0.0),
        nn.Linear(inner, dim, bias=False),
    )


class PEG(nn.Module):
    """Position-generating depth-wise 3x3x3 convolution, causal along the slice axis."""

    def __init__(self, dim: int, causal: bool = True) -> None:
        super().__init__()
        self.causal = causal
        self.dsconv = nn.Conv3d(dim, dim, 3, groups=dim)

    def forward(self, x: torch.Tensor, shape: tuple[int, int, int, int]) -> torch.Tensor:
        original = x.shape
        grid = x.reshape(*shape, -1)  # raw reshape, as published (see module doc)
        grid = grid.permute(0, 4, 1, 2, 3)
        frames = (2, 0) if self.causal else (1, 1)
        grid = F.pad(grid, (1, 1, 1, 1, *frames), value=0.0)
        grid = self.dsconv(grid)
        return grid.permute(0, 2, 3, 4, 1).reshape(original)


class Attention(nn.Module):
    """Cosine-similarity multi-head self-attention (scale 8) with learned q/k scales."""

    def __init__(self, dim: int, dim_head: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = 8.0
        inner = dim_head * heads
        self.norm = BiaslessLayerNorm(dim)
        self.context_norm = BiaslessLayerNorm(dim)  # unused without cross-attention; published
        self.null_kv = nn.Parameter(torch.zeros(heads, 0, dim_head))  # 0 null key/values
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.q_scale = nn.Parameter(torch.ones(dim_head))
        self.k_scale = nn.Parameter(torch.ones(dim_head))
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor | None = None) -> torch.Tensor:
        k, v = self.to_kv(x).chunk(2, dim=-1)  # from the un-normalised input, as published
        q = self.to_q(self.norm(x))
        q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in (q, k, v))
        q = _l2norm(q) * self.q_scale
        k = _l2norm(k) * self.k_scale
        bias = None if attn_bias is None else attn_bias.to(q.dtype).unsqueeze(0)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))


class Transformer(nn.Module):
    """Layers of [PEG, self-attention, (no cross-attention), feed-forward], then a norm."""

    def __init__(self, dim: int, depth: int, dim_head: int, heads: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([PEG(dim, causal=True), Attention(dim, dim_head, heads),
                           None,  # type: ignore[list-item]  # the published empty cross-attention
                           feed_forward(dim)])
            for _ in range(depth)
        )
        self.norm_out = BiaslessLayerNorm(dim)

    def forward(self, x: torch.Tensor, video_shape: tuple[int, int, int, int],
                attn_bias: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            assert isinstance(layer, nn.ModuleList)
            peg, attn, ff = layer[0], layer[1], layer[3]
            x = peg(x, video_shape) + x
            x = attn(x, attn_bias) + x
            x = ff(x) + x
        out: torch.Tensor = self.norm_out(x)
        return out


class ContinuousPositionBias(nn.Module):
    """Per-head attention bias from log-scaled 2-D patch offsets (Liu et al., Swin V2)."""

    def __init__(self, dim: int, heads: int, layers: int = 2) -> None:
        super().__init__()
        self.net = nn.ModuleList([nn.Sequential(nn.Linear(2, dim), nn.LeakyReLU(0.1))])
        for _ in range(layers - 1):
            self.net.append(nn.Sequential(nn.Linear(dim, dim), nn.LeakyReLU(0.1)))
        self.net.append(nn.Linear(dim, heads))

    def forward(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        grid = torch.stack(torch.meshgrid(torch.arange(h, device=device),
                                          torch.arange(w, device=device), indexing="ij"))
        grid = grid.reshape(2, -1).T  # (h w) 2
        rel = (grid[:, None, :] - grid[None, :, :]).float()
        rel = torch.sign(rel) * torch.log(rel.abs() + 1)
        for layer in self.net:
            rel = layer(rel)
        return rel.permute(2, 0, 1)  # heads, i, j


class CosineCodebook(nn.Module):
    """The codebook buffers of vector-quantize-pytorch 1.1.2's cosine-similarity codebook."""

    embed: torch.Tensor

    def __init__(self, dim: int, codebook_size: int) -> None:
        super().__init__()
        self.register_buffer("initted", torch.ones(1))
        self.register_buffer("cluster_size", torch.zeros(1, codebook_size))
        self.register_buffer("embed", _l2norm(torch.randn(1, codebook_size, dim)))


class VectorQuantizer(nn.Module):
    """Nearest code by cosine similarity; returns the stored (un-normalised) code vectors."""

    def __init__(self, dim: int, codebook_size: int) -> None:
        super().__init__()
        self._codebook = CosineCodebook(dim, codebook_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embed = self._codebook.embed[0]
        sim = _l2norm(x.float()) @ _l2norm(embed).T
        index = sim.argmax(dim=-1)
        return embed[index], index


class Patchify(nn.Module):
    """``b c (t pt) (h p) (w p) -> b t h w (c pt p p)``: the published patch order."""

    def __init__(self, patch: int, temporal: int) -> None:
        super().__init__()
        self.patch, self.temporal = patch, temporal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rearrange(x, "b c (t pt) (h p1) (w p2) -> b t h w (c pt p1 p2)",
                         pt=self.temporal, p1=self.patch, p2=self.patch)


class Unpatchify(nn.Module):
    """Inverse of ``Patchify`` (the decoder's pixel head; unused at inference)."""

    def __init__(self, patch: int, temporal: int) -> None:
        super().__init__()
        self.patch, self.temporal = patch, temporal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rearrange(x, "b t h w (c pt p1 p2) -> b c (t pt) (h p1) (w p2)",
                         pt=self.temporal, p1=self.patch, p2=self.patch)


class CTViT(nn.Module):
    """The CT-CLIP image encoder (see module doc). ``forward`` returns quantised tokens."""

    def __init__(self, config: CTViTConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        patch_dim = c.channels * c.patch_size**2
        self.spatial_rel_pos_bias = ContinuousPositionBias(c.dim, c.heads)
        self.to_patch_emb_first_frame = nn.Sequential(
            Patchify(c.patch_size, 1), nn.LayerNorm(patch_dim), nn.Linear(patch_dim, c.dim),
            nn.LayerNorm(c.dim))
        self.to_patch_emb = nn.Sequential(
            Patchify(c.patch_size, c.temporal_patch_size),
            nn.LayerNorm(patch_dim * c.temporal_patch_size),
            nn.Linear(patch_dim * c.temporal_patch_size, c.dim), nn.LayerNorm(c.dim))
        self.enc_spatial_transformer = Transformer(c.dim, c.spatial_depth, c.dim_head, c.heads)
        self.enc_temporal_transformer = Transformer(c.dim, c.temporal_depth, c.dim_head, c.heads)
        self.vq = VectorQuantizer(c.dim, c.codebook_size)
        self.to_pixels_first_frame = nn.Sequential(nn.Linear(c.dim, patch_dim),
                                                   Unpatchify(c.patch_size, 1))
        self.to_pixels = nn.Sequential(
            nn.Linear(c.dim, patch_dim * c.temporal_patch_size),
            Unpatchify(c.patch_size, c.temporal_patch_size))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """``video`` (b, 1, frames, H, W) → quantised tokens (b, t, h, w, dim)."""
        tokens = self.to_patch_emb(video)
        b, t, h, w, _ = tokens.shape
        shape = (b, t, h, w)
        bias = self.spatial_rel_pos_bias(h, w, device=tokens.device)
        x = rearrange(tokens, "b t h w d -> (b t) (h w) d")
        x = self.enc_spatial_transformer(x, shape, attn_bias=bias)
        x = rearrange(x, "(b t) (h w) d -> (b h w) t d", b=b, h=h, w=w)
        x = self.enc_temporal_transformer(x, shape)
        x = rearrange(x, "(b h w) t d -> b (t h w) d", b=b, h=h, w=w)
        quantised, _ = self.vq(x)
        return rearrange(quantised, "b (t h w) d -> b t h w d", t=t, h=h, w=w)
