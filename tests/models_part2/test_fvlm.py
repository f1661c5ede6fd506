"""fVLM: the published layout, region geometry and the region scorer on a phantom."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.models.checkpoint import CheckpointError, compare_layout, layout_of
from inference.models.ctrate import CTRATE_TO_KEY
from inference.models.fvlm import FVLMImage, FVLMModel, adapt_fvlm_state, build_fvlm
from inference.models.learned import meta_layout
from inference.models.regions import work_mask_on
from inference.models.volume_prep import orient_lps
from series_selector.types import HUVolume
from tests.models_part2.conftest import TINY_FVLM, fvlm_prompts

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "fvlm_layout.json").read_text())


def test_layout_equals_the_published_one() -> None:
    assert FIXTURE["source"]["commit"] == "d768ec1546fb825fcc9ea9b3e7b2754a69f870c1"
    expected = {k: tuple(v) for k, v in FIXTURE["image_keys"].items()}
    report = compare_layout(expected, meta_layout("fvlm"))
    assert report.ok, report.describe()


def test_text_side_is_dropped_and_checked() -> None:
    with torch.device("meta"):
        net = build_fvlm()
        state = {k: torch.empty(v) for k, v in layout_of(net).items()}
        state |= {"text_proj.weight": torch.empty(256, 768), "text_proj.bias": torch.empty(256),
                  "text_encoder.embeddings.word_embeddings.weight": torch.empty(30522, 768)}
        assert compare_layout(layout_of(net), layout_of(adapt_fvlm_state(state, net))).ok
        state["text_proj.weight"] = torch.empty(128, 768)
    with pytest.raises(CheckpointError, match="another configuration"):
        adapt_fvlm_state(state, net)


def test_vit_interpolates_positions_for_other_crop_sizes() -> None:
    net = FVLMImage(TINY_FVLM).eval()
    with torch.inference_mode():
        native = net.visual_encoder(torch.rand(1, 1, 16, 32, 32))
        larger = net.visual_encoder(torch.rand(1, 1, 24, 48, 32))
        tokens = torch.zeros(3 * 3 * 2, dtype=torch.bool)
        tokens[:3] = True
        feat = net.region_feature(larger, tokens, 1)
    assert len(native) == 2 and native[0].shape == (1, 2 * 2 * 2, 32)
    assert larger[-1].shape == (1, 3 * 3 * 2, 32)
    assert feat.shape == (16,) and torch.isclose(feat.norm(), torch.tensor(1.0))


def test_work_mask_lands_on_the_same_anatomy_after_reorientation() -> None:
    vox = np.zeros((10, 12, 14), dtype=np.float32)
    vol = HUVolume(vox, (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), (-1, 0, 0, 0, 1, 0, 0, 0, -1))
    o = orient_lps(vol)
    mask = np.zeros((5, 6, 7), dtype=bool)  # working grid, factors 2
    mask[1, 2, 3] = True  # source voxels z 2-3, y 4-5, x 6-7
    out = work_mask_on(mask, (2, 2, 2), o, o.voxels.shape)
    src = np.zeros(vox.shape, dtype=bool)
    src[2:4, 4:6, 6:8] = True
    assert np.array_equal(out, o.apply(src))


def test_region_scorer_on_a_phantom(chest: HUVolume) -> None:
    from inference.models.fvlm import FVLMPreprocessing

    model = FVLMModel(FVLMImage(TINY_FVLM).eval(), weights_version="t", weights_sha256="b" * 64)
    model.prep = FVLMPreprocessing(spacing_mm=(6.0, 4.0, 4.0), min_size=(16, 32, 32),
                                   roi=(16, 48, 48))
    assert not model.status.weights_installed and "embed-prompts" in model.status.description
    with pytest.raises(ValueError, match="another checkpoint"):
        model.set_prompts(fvlm_prompts("c" * 64))
    model.set_prompts(fvlm_prompts("b" * 64))
    out = model.predict(chest)
    by_key = {f.key: f for f in out.findings}
    assert out.model.weights_installed and len(by_key) == len(out.findings) == 22
    scored = {k for k, f in by_key.items() if f.probability is not None}
    assert {CTRATE_TO_KEY["Emphysema"], CTRATE_TO_KEY["Cardiomegaly"]} <= scored
    assert all(0 <= by_key[k].probability <= 1 for k in scored)  # type: ignore[operator]
    assert by_key["hiatal_hernia"].probability is None
    assert "oesophagus" in by_key["hiatal_hernia"].note
    assert by_key["emphysema"].note == "fVLM, lung region"
    assert "lung.emphysema" in out.features
