"""Shared fixtures of the learned-model tests: a small phantom and test-sized architectures.

The published configurations are checked on the ``meta`` device (names and
shapes, no memory); everything that runs uses the same classes at a small size,
swapped in for the published builders with ``tiny_families``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from ctnode.settings import Settings
from inference.analyzer.evaluation import phantom_volume
from inference.models import ctclip, diffusion_anomaly, fvlm, mednext
from inference.models.ctclip.clip import CTCLIPClassFine, CTCLIPImage
from inference.models.ctclip.ctvit import CTViTConfig
from inference.models.ctclip.model import _CTClipBase
from inference.models.ctclip.preprocess import CTClipPreprocessing
from inference.models.ctrate import CTRATE_KEYS, CTRATE_TO_KEY
from inference.models.diffusion_anomaly import DiffusionAnomalyNet, DiffusionConfig
from inference.models.fvlm import FVLM_ITEMS, FVLMConfig, FVLMImage, FVLMPreprocessing, fvlm_prompt
from inference.models.mednext import MedNeXtClassifier, MedNeXtConfig, MedNeXtPreprocessing
from inference.models.prompts import PromptEmbeddings
from phantom import generate_phantom, small_spec
from series_selector.types import HUVolume

TINY_CTVIT = CTViTConfig(dim=32, codebook_size=16, image_size=40, patch_size=20,
                         temporal_patch_size=4, spatial_depth=1, temporal_depth=1, dim_head=8,
                         heads=2, frames=16)
TINY_CTCLIP_PREP = CTClipPreprocessing(spacing_mm=(15.0, 7.5, 7.5), size=(16, 40, 40))
TINY_FVLM = FVLMConfig(img_size=(16, 32, 32), patch_size=(8, 16, 16), hidden=32, mlp_dim=64,
                       layers=2, heads=2, embed_dim=16, query_heads=2, levels=(0,))
TINY_FVLM_PREP = FVLMPreprocessing(spacing_mm=(6.0, 4.0, 4.0), min_size=(16, 32, 32),
                                   roi=(16, 48, 48))
TINY_MEDNEXT = MedNeXtConfig(init_filters=4, blocks_down=(1, 1, 1, 1), blocks_bottleneck=1)
TINY_MEDNEXT_PREP = MedNeXtPreprocessing(spacing_mm=(9.0, 8.0, 8.0), size=(32, 48, 48))
TINY_DIFFUSION = DiffusionConfig(image_size=32, channels=(8, 16), attention_levels=(False, True),
                                 head_channels=8, norm_groups=8, slice_step_mm=20.0,
                                 ddim_stride=125)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """One intra-op thread: on a busy 2-core runner, two spin-waiting threads are far slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def chest() -> HUVolume:
    """A small whole-chest phantom (128 x 128 x 117, 2.7 x 2.7 x 2.5 mm)."""
    return phantom_volume(generate_phantom(small_spec(seed=1)))


@pytest.fixture()
def tiny_families(monkeypatch: pytest.MonkeyPatch) -> None:
    """The published builders and preprocessing swapped for test-sized ones."""
    monkeypatch.setattr(ctclip.clip, "build_ctclip", lambda: CTCLIPImage(TINY_CTVIT))
    monkeypatch.setattr(ctclip.clip, "build_ctclip_classfine",
                        lambda: CTCLIPClassFine(TINY_CTVIT))
    monkeypatch.setattr(_CTClipBase, "prep", TINY_CTCLIP_PREP)
    monkeypatch.setattr(fvlm, "build_fvlm", lambda: FVLMImage(TINY_FVLM))
    monkeypatch.setattr(fvlm.FVLMModel, "prep", TINY_FVLM_PREP)
    monkeypatch.setattr(mednext, "build_mednext", lambda: MedNeXtClassifier(TINY_MEDNEXT))
    monkeypatch.setattr(mednext.MedNeXtModel, "prep", TINY_MEDNEXT_PREP)
    monkeypatch.setattr(diffusion_anomaly, "build_diffusion_anomaly",
                        lambda: calibrated(DiffusionAnomalyNet(TINY_DIFFUSION)))


def calibrated(net: DiffusionAnomalyNet) -> DiffusionAnomalyNet:
    """A diffusion net with a plausible calibration (as training would leave it)."""
    net.pixel_threshold.fill_(0.5)
    net.score_mean.fill_(0.4)
    net.score_std.fill_(0.05)
    return net


def unit_rows(shape: tuple[int, ...], seed: int) -> np.ndarray:
    e = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    return e / np.linalg.norm(e, axis=-1, keepdims=True)


def ctclip_prompts(sha: str, dim: int = 512) -> PromptEmbeddings:
    return PromptEmbeddings("ctclip", sha, CTRATE_KEYS, ("",) * 18,
                            tuple((f"{k} is present.", f"{k} is not present.")
                                  for k in CTRATE_KEYS), unit_rows((18, 2, dim), 0))


def fvlm_prompts(sha: str, dim: int = TINY_FVLM.embed_dim) -> PromptEmbeddings:
    return PromptEmbeddings("fvlm", sha, tuple(CTRATE_TO_KEY[n] for _, n in FVLM_ITEMS),
                            tuple(r for r, _ in FVLM_ITEMS),
                            tuple(fvlm_prompt(n) for _, n in FVLM_ITEMS),
                            unit_rows((len(FVLM_ITEMS), 2, dim), 1))


def settings_for(tmp: Path, models: list[str]) -> Settings:
    """Settings with an empty weights folder, these models, in-process runners."""
    return Settings(node={"work_dir": tmp / "var", "temp_dir": None},
                    weights={"directory": tmp / "weights"},
                    inference={"enabled_models": models, "model_isolation": "thread"})
