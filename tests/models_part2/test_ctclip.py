"""CT-CLIP: the published layout, checkpoint quirks, the encoder's maths and preprocessing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from inference.models.checkpoint import CheckpointError, compare_layout, layout_of
from inference.models.ctclip.clip import (
    CTCLIPClassFine,
    CTCLIPImage,
    adapt_ctclip_state,
    build_ctclip,
    build_ctclip_classfine,
)
from inference.models.ctclip.ctvit import PEG, Attention
from inference.models.ctclip.preprocess import CTClipPreprocessing, ctclip_input
from inference.models.learned import meta_layout
from series_selector.types import HUVolume
from tests.models_part2.conftest import TINY_CTVIT

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "ctclip_layout.json").read_text())
IMAGE_KEYS = {k: tuple(v) for k, v in FIXTURE["base"]["image_keys"].items()}
UNUSED = {k: tuple(v) for k, v in FIXTURE["base"]["unused_keys"].items()}
HEAD = {k: tuple(v) for k, v in FIXTURE["classfine"]["head_keys"].items()}


def test_fixture_names_its_source_commit() -> None:
    assert FIXTURE["source"]["commit"] == "a2a155c601987820433c01db69b64d701d3d229d"
    assert FIXTURE["source"]["vector_quantize_pytorch"]["tag"] == "1.1.2"
    assert len(IMAGE_KEYS) == 159 and IMAGE_KEYS["to_visual_latent.weight"] == (512, 294912)


def test_base_layout_equals_the_published_one() -> None:
    report = compare_layout(IMAGE_KEYS, meta_layout("ctclip"))
    assert report.ok, report.describe()


def test_classfine_layout_equals_the_published_one() -> None:
    expected = {"trained_model." + k: v for k, v in IMAGE_KEYS.items()} | HEAD
    report = compare_layout(expected, meta_layout("ctclip_classfine"))
    assert report.ok, report.describe()


def _published_state(prefix: str = "") -> dict[str, torch.Tensor]:
    """A published checkpoint's names and shapes as meta tensors (no memory)."""
    names = IMAGE_KEYS | UNUSED | {
        "text_transformer.embeddings.position_ids": (1, 512),
        "text_transformer.embeddings.word_embeddings.weight": (30522, 768),
        "text_transformer.encoder.layer.0.attention.self.query.weight": (768, 768)}
    return {prefix + k: torch.empty(v, device="meta") for k, v in names.items()}


def test_published_checkpoint_keys_load_after_the_quirks() -> None:
    published = _published_state()
    with torch.device("meta"):
        base, fine = build_ctclip(), build_ctclip_classfine()
    adapted = adapt_ctclip_state(published, base)
    assert compare_layout(layout_of(base), layout_of(adapted)).ok  # text tower, *_extra dropped
    classfine = _published_state("trained_model.") | {
        k: torch.empty(v, device="meta") for k, v in HEAD.items()}
    assert compare_layout(layout_of(fine), layout_of(adapt_ctclip_state(classfine, fine))).ok
    encoder_only = {k.removeprefix("visual_transformer."): v for k, v in published.items()
                    if k.startswith("visual_transformer.")} | {
        "to_visual_latent.weight": published["to_visual_latent.weight"],
        "temperature": published["temperature"]}
    assert compare_layout(layout_of(base), layout_of(adapt_ctclip_state(encoder_only, base))).ok
    with pytest.raises(CheckpointError, match="ClassFine checkpoint"):
        adapt_ctclip_state(classfine, base)
    wrong = dict(published)
    wrong["to_visual_latent_extra.weight"] = torch.empty(512, 1000, device="meta")
    with pytest.raises(CheckpointError, match="another configuration"):
        adapt_ctclip_state(wrong, base)


def test_attention_matches_the_published_formula() -> None:
    torch.manual_seed(0)
    attn = Attention(dim=16, dim_head=4, heads=2).eval()
    with torch.no_grad():
        attn.norm.gamma.uniform_(0.5, 1.5)
        attn.q_scale.uniform_(0.5, 1.5)
    x = torch.randn(3, 5, 16)
    bias = torch.randn(2, 5, 5)
    q = attn.to_q(F.layer_norm(x, (16,), attn.norm.gamma, attn.norm.beta))
    k, v = attn.to_kv(x).chunk(2, dim=-1)  # keys and values from the un-normalised input

    def heads(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(3, 5, 2, 4).permute(0, 2, 1, 3)

    q, k, v = heads(q), heads(k), heads(v)
    q = F.normalize(q, dim=-1) * attn.q_scale
    k = F.normalize(k, dim=-1) * attn.k_scale
    sim = torch.einsum("bhid,bhjd->bhij", q, k) * 8 + bias
    ref = torch.einsum("bhij,bhjd->bhid", sim.softmax(-1), v).permute(0, 2, 1, 3).reshape(3, 5, 8)
    with torch.no_grad():
        assert torch.allclose(attn(x, bias), attn.to_out(ref), atol=1e-5)


def test_temporal_peg_reshapes_tokens_as_published() -> None:
    """(b h w) t d tokens are reshaped straight to b t h w d, then causally convolved."""
    torch.manual_seed(0)
    peg = PEG(dim=3).eval()
    b, t, h, w = 1, 4, 2, 3
    x = torch.randn(b * h * w, t, 3)
    grid = x.reshape(b, t, h, w, 3).permute(0, 4, 1, 2, 3)
    ref = peg.dsconv(F.pad(grid, (1, 1, 1, 1, 2, 0))).permute(0, 2, 3, 4, 1).reshape(x.shape)
    with torch.no_grad():
        assert torch.allclose(peg(x, (b, t, h, w)), ref)


def test_small_encoder_and_heads_run_on_cpu() -> None:
    torch.manual_seed(0)
    video = torch.rand(2, 1, 16, 40, 40) * 2 - 1
    net = CTCLIPImage(TINY_CTVIT).eval()
    with torch.inference_mode():
        tokens = net.visual_transformer(video)
        latent = net(video)
        codes = net.visual_transformer.vq._codebook.embed[0]
        prompts = F.normalize(torch.randn(18, 2, 512), dim=-1)
        p = net.zero_shot(latent, prompts)
    assert tokens.shape == (2, 4, 2, 2, 32)
    assert all(any(torch.equal(v, c) for c in codes) for v in tokens.reshape(-1, 32)[:5])
    assert latent.shape == (2, 512) and torch.allclose(latent.norm(dim=-1), torch.ones(2))
    logits = torch.einsum("bd,fkd->bfk", latent, prompts) * net.temperature.exp()
    assert torch.allclose(p, torch.softmax(logits, -1)[..., 0])
    fine = CTCLIPClassFine(TINY_CTVIT).eval()
    with torch.inference_mode():
        probs, lat = fine(video)
    assert probs.shape == (2, 18) and bool(((probs >= 0) & (probs <= 1)).all())


def _volume(direction: tuple[float, ...], shape: tuple[int, int, int] = (20, 30, 26)
            ) -> HUVolume:
    rng = np.random.default_rng(3)
    vox = rng.uniform(-1200, 1500, size=shape).astype(np.float32)
    return HUVolume(vox, (0.9, 0.8, 1.25), (0.0, 0.0, 0.0), direction)


def test_preprocessing_equals_the_published_pipeline() -> None:
    """LPS-ordered input: the published NIfTI arithmetic on (x, y, z), done in one go."""
    vol = _volume((1, 0, 0, 0, 1, 0, 0, 0, 1))
    prep = CTClipPreprocessing(size=(24, 16, 40))
    ours = ctclip_input(vol, prep)[0, 0]
    xyz = np.clip(vol.voxels.transpose(2, 1, 0), -1000, 1000)  # the NIfTI array: x, y, z
    t = torch.from_numpy(np.ascontiguousarray(xyz.transpose(2, 0, 1)))[None, None].double()
    sx, sy, sz = vol.spacing
    size = [int(n * s / t_) for n, s, t_ in zip(t.shape[2:], (sz, sx, sy), (1.5, 0.75, 0.75),
                                                strict=True)]
    arr = F.interpolate(t, size=size, mode="trilinear", align_corners=False)[0, 0].numpy()
    arr = np.transpose(arr, (1, 2, 0)) / 1000  # x, y, z
    target = (16, 40, 24)
    out = []
    for n, d in zip(arr.shape, target, strict=True):
        s = max((n - d) // 2, 0)
        e = min(s + d, n)
        out.append((s, e, (d - (e - s)) // 2, d - (e - s) - (d - (e - s)) // 2))
    arr = arr[out[0][0]:out[0][1], out[1][0]:out[1][1], out[2][0]:out[2][1]]
    arr = np.pad(arr, [(o[2], o[3]) for o in out], constant_values=-1)
    ref = np.transpose(arr, (2, 0, 1))  # frames (z), x, y
    assert ours.shape == ref.shape == (24, 16, 40)
    assert np.allclose(ours, ref, atol=1e-4)


def test_preprocessing_puts_any_scan_order_in_the_published_orientation() -> None:
    """The same anatomy stored feet-first and mirrored gives the same model input."""
    lps = _volume((1, 0, 0, 0, 1, 0, 0, 0, 1))
    flipped = HUVolume(lps.voxels[::-1, :, ::-1].copy(), lps.spacing, (0.0, 0.0, 0.0),
                       (-1, 0, 0, 0, 1, 0, 0, 0, -1))
    prep = CTClipPreprocessing(size=(24, 16, 40))
    assert np.allclose(ctclip_input(lps, prep), ctclip_input(flipped, prep), atol=1e-5)
