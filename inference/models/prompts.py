"""Text embeddings of the zero-shot prompts, computed once and stored as a file.

CT-CLIP and fVLM score a finding by comparing the image (or an anatomical
region of it) with the embeddings of a "present" and an "absent" sentence.
Those embeddings depend only on the checkpoint's text tower, so ``ctnode
weights embed-prompts`` computes them once on a machine that has the text
encoder (CXR-BERT) and writes them here; the node never loads a text encoder.

The file (``.npz``, no pickle) records the SHA-256 of the checkpoint whose
text tower made it: a model refuses prompts made for another checkpoint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.findings import get_finding

PROMPTS_FORMAT = "ctnode-prompts/1"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True, eq=False)
class PromptEmbeddings:
    """Per (finding, region): the L2-normalised embeddings of the present/absent prompts.

    ``embeddings[i, 0]`` is the "present" sentence, ``[i, 1]`` the "absent" one;
    ``regions[i]`` is "" for a whole-image model (CT-CLIP) or the anatomical
    region (fVLM: "lung", "heart", "esophagus", "aorta").
    """

    model: str
    checkpoint_sha256: str
    findings: tuple[str, ...]
    regions: tuple[str, ...]
    prompts: tuple[tuple[str, str], ...]
    embeddings: np.ndarray  # (n, 2, dim) float32
    text_encoder: str = ""

    def __post_init__(self) -> None:
        n = len(self.findings)
        if not (len(self.regions) == len(self.prompts) == n):
            raise ValueError("PromptEmbeddings: findings, regions and prompts must align")
        if self.embeddings.ndim != 3 or self.embeddings.shape[:2] != (n, 2):
            raise ValueError(f"PromptEmbeddings.embeddings must be ({n}, 2, dim), "
                             f"got {self.embeddings.shape}")
        if not np.all(np.isfinite(self.embeddings)):
            raise ValueError("PromptEmbeddings.embeddings must be finite")
        if not _SHA256.match(self.checkpoint_sha256):
            raise ValueError("PromptEmbeddings.checkpoint_sha256 must be 64 lowercase hex digits")
        for key in self.findings:
            get_finding(key)
        pairs = list(zip(self.findings, self.regions, strict=True))
        if len(set(pairs)) != len(pairs):
            raise ValueError("PromptEmbeddings names a (finding, region) twice")

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[2])

    def select(self, region: str = "") -> dict[str, np.ndarray]:
        """Finding key -> (2, dim) embeddings of one region ("" for whole-image)."""
        return {k: self.embeddings[i] for i, (k, r) in enumerate(
            zip(self.findings, self.regions, strict=True)) if r == region}

    def save(self, path: Path) -> None:
        with open(path, "wb") as f:
            np.savez(
                f, format=np.array(PROMPTS_FORMAT), model=np.array(self.model),
                checkpoint_sha256=np.array(self.checkpoint_sha256),
                text_encoder=np.array(self.text_encoder),
                findings=np.array(self.findings, dtype=str),
                regions=np.array(self.regions, dtype=str),
                prompts=np.array(self.prompts, dtype=str).reshape(len(self.prompts), 2),
                embeddings=self.embeddings.astype(np.float32))

    @classmethod
    def load(cls, path: Path) -> PromptEmbeddings:
        """Read and check a prompts file; ValueError says what is wrong with it."""
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["format"]) != PROMPTS_FORMAT:
                    raise ValueError(f"{path.name} is not a ctnode prompts file")
                return cls(
                    model=str(data["model"]),
                    checkpoint_sha256=str(data["checkpoint_sha256"]),
                    findings=tuple(str(v) for v in data["findings"]),
                    regions=tuple(str(v) for v in data["regions"]),
                    prompts=tuple((str(a), str(b)) for a, b in data["prompts"]),
                    embeddings=np.asarray(data["embeddings"], dtype=np.float32),
                    text_encoder=str(data["text_encoder"]),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path.name} is not a usable prompts file: {exc}") from exc
