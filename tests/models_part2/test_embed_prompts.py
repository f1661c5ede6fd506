"""``embed-prompts``: the checkpoint's own projection of the text tower, bound to its SHA-256."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.models.checkpoint import CheckpointError
from inference.models.ctrate import CTRATE_KEYS
from inference.models.embed_prompts import SPECS, embed_prompts, install_prompts
from inference.models.prompts import PromptEmbeddings
from weights import checked_file


class FakeTower:
    """A deterministic 'text tower': a hash of each sentence as its [CLS] vector."""

    description = "fake tower"

    def __init__(self, hidden: int) -> None:
        self.hidden = hidden
        self.seen: list[str] = []

    def cls_embeddings(self, texts: Sequence[str], max_length: int) -> np.ndarray:
        self.seen += list(texts)
        seeds = [int(hashlib.sha256(t.encode()).hexdigest()[:8], 16) for t in texts]
        return np.stack([np.random.default_rng(s).normal(size=self.hidden) for s in seeds])


def test_ctclip_prompts_use_the_published_sentences_and_projection(tmp_path: Path) -> None:
    w = torch.randn(512, 768)
    ckpt = tmp_path / "clip.pt"
    torch.save({"to_text_latent.weight": w, "temperature": torch.tensor(1.0)}, ckpt)
    tower = FakeTower(768)
    prompts = embed_prompts("ctclip", ckpt, tower)
    assert prompts.findings == CTRATE_KEYS and prompts.regions == ("",) * 18
    assert prompts.prompts[0] == ("Medical material is present.",
                                  "Medical material is not present.")
    cls = tower.cls_embeddings(["Emphysema is present."], 512)[0]
    expected = torch.nn.functional.normalize(torch.from_numpy(cls).float() @ w.T, dim=0)
    i = CTRATE_KEYS.index("emphysema")
    assert np.allclose(prompts.embeddings[i, 0], expected.numpy(), atol=1e-5)
    assert prompts.checkpoint_sha256 == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    entry = install_prompts(prompts, tmp_path / "weights")
    back = PromptEmbeddings.load(checked_file(entry.name, tmp_path / "weights"))
    assert np.array_equal(back.embeddings, prompts.embeddings) and back.prompts == prompts.prompts


def test_fvlm_prompts_per_region_with_bias(tmp_path: Path) -> None:
    ckpt = tmp_path / "fvlm.pt"
    torch.save({"model": {"text_proj.weight": torch.randn(256, 768),
                          "text_proj.bias": torch.randn(256), "temp": torch.tensor(0.07)}}, ckpt)
    prompts = embed_prompts("fvlm", ckpt, FakeTower(768))
    assert len(prompts.findings) == len(SPECS["fvlm"].items) == 16
    assert set(prompts.select("heart")) == {"cardiomegaly", "pericardial_effusion",
                                            "coronary_artery_wall_calcification"}
    assert ("Atelectatic.", "Not Atelectatic.") in prompts.prompts
    assert np.allclose(np.linalg.norm(prompts.embeddings, axis=-1), 1.0, atol=1e-5)


def test_checkpoint_without_text_side_is_refused(tmp_path: Path) -> None:
    ckpt = tmp_path / "image_only.pt"
    torch.save({"temperature": torch.tensor(1.0)}, ckpt)
    with pytest.raises(CheckpointError, match="to_text_latent.weight"):
        embed_prompts("ctclip", ckpt, FakeTower(768))
    with pytest.raises(ValueError, match="has no prompts"):
        embed_prompts("mednext", ckpt, FakeTower(768))
