"""``ctnode weights embed-prompts``: the prompt embeddings of CT-CLIP and fVLM, made once.

Run on a machine that has ``transformers`` and a local copy of the CXR-BERT
folder (``microsoft/BiomedVLP-CXR-BERT-specialized``: config and vocabulary;
the weights come from the checkpoint itself). For each (finding, region) the
"present" and "absent" sentences go through the checkpoint's own text tower;
the [CLS] vector of the last layer is projected as the published model does
(CT-CLIP: ``to_text_latent``, no bias; fVLM: ``text_proj``) and L2-normalised.
The result is a ``PromptEmbeddings`` file bound to the checkpoint's SHA-256.

The text towers, as the published code runs them:

- CT-CLIP: a ``transformers`` ``BertModel`` (``text_transformer.*``). Its
  checkpoint carries ``embeddings.position_ids``, which ``transformers`` >= 4.31
  no longer stores: dropped when the model does not expect it.
- fVLM: LAVIS's BERT in text mode (``text_encoder.*``): no token-type
  embedding is added and cross-attention is not run, so the ``transformers``
  model gets a zero token-type table and the cross-attention and MLM-head
  tensors are dropped.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from inference.models.checkpoint import CheckpointError, StateDict, load_strict, read_state_dict
from inference.models.ctrate import CTRATE_NAMES, CTRATE_TO_KEY
from inference.models.fvlm import FVLM_ITEMS, fvlm_prompt
from inference.models.prompts import PromptEmbeddings
from weights import WeightsEntry, install, sha256_of

logger = logging.getLogger(__name__)


class TextEncoder(Protocol):
    """A text tower: the last layer's [CLS] vector of each sentence."""

    description: str

    def cls_embeddings(self, texts: Sequence[str], max_length: int) -> np.ndarray:
        """(len(texts), hidden) float32."""


@dataclass(frozen=True, slots=True)
class PromptSpec:
    """What a model's prompts are and how its checkpoint projects them."""

    model: str
    text_prefix: str
    projection: str  # weight key; "<stem>.bias" is added when the checkpoint has it
    max_length: int
    items: tuple[tuple[str, str, str, str], ...]  # (finding key, region, present, absent)


SPECS = {
    "ctclip": PromptSpec(
        "ctclip", "text_transformer.", "to_text_latent.weight", 512,
        tuple((CTRATE_TO_KEY[n], "", f"{n} is present.", f"{n} is not present.")
              for n in CTRATE_NAMES)),
    "fvlm": PromptSpec(
        "fvlm", "text_encoder.", "text_proj.weight", 384,  # max_txt_len of the fVLM config
        tuple((CTRATE_TO_KEY[n], r, *fvlm_prompt(n)) for r, n in FVLM_ITEMS)),
}


def _strip(state: StateDict, prefix: str) -> StateDict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def embed_prompts(model: str, checkpoint: Path, encoder: TextEncoder | None = None, *,
                  text_encoder_dir: Path | None = None) -> PromptEmbeddings:
    """The prompt embeddings of ``model`` from ``checkpoint``'s text tower (see module doc).

    ``encoder`` (tests, other runtimes) replaces the ``transformers`` tower
    built from ``text_encoder_dir``.
    """
    if model not in SPECS:
        raise ValueError(f"{model} has no prompts; models with prompts: {', '.join(SPECS)}")
    spec = SPECS[model]
    state = read_state_dict(checkpoint)
    if model == "ctclip" and any(k.startswith("trained_model.") for k in state):
        state = _strip(state, "trained_model.")  # a ClassFine file holds the whole CT-CLIP
    if spec.projection not in state:
        raise CheckpointError(f"{checkpoint.name} has no {spec.projection}: it is not a "
                              f"{model} checkpoint with its text side")
    if encoder is None:
        if text_encoder_dir is None:
            raise ValueError("give the CXR-BERT folder (text_encoder_dir) or an encoder")
        encoder = HFTextEncoder(text_encoder_dir, _strip(state, spec.text_prefix), model)
    texts = [t for _, _, present, absent in spec.items for t in (present, absent)]
    cls = torch.from_numpy(np.asarray(encoder.cls_embeddings(texts, spec.max_length),
                                      dtype=np.float32))
    weight = state[spec.projection].float()
    bias = state.get(spec.projection.removesuffix("weight") + "bias")
    projected = cls @ weight.T + (bias.float() if bias is not None else 0.0)
    latent = torch.nn.functional.normalize(projected, dim=-1).numpy()
    n = len(spec.items)
    return PromptEmbeddings(
        model=model, checkpoint_sha256=sha256_of(checkpoint),
        findings=tuple(i[0] for i in spec.items), regions=tuple(i[1] for i in spec.items),
        prompts=tuple((i[2], i[3]) for i in spec.items),
        embeddings=latent.reshape(n, 2, -1).astype(np.float32),
        text_encoder=encoder.description)


def install_prompts(prompts: PromptEmbeddings, directory: Path) -> WeightsEntry:
    """Save the embeddings into ``directory`` as the site entry ``<model>_prompts``."""
    from inference.models.learned import PROMPTS_SUFFIX

    name = prompts.model + PROMPTS_SUFFIX
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".prompts-") as tmp:
        path = Path(tmp) / f"{name}.npz"
        prompts.save(path)
        digest = sha256_of(path)
        entry = WeightsEntry(
            name=name, version=f"for-{prompts.checkpoint_sha256[:12]}", file=f"{name}.npz",
            source=f"ctnode weights embed-prompts from checkpoint "
                   f"{prompts.checkpoint_sha256[:12]}… ({prompts.text_encoder})",
            sha256=digest, license="derived from the checkpoint: the checkpoint's terms",
            model=prompts.model, input_spec="", output_spec=f"{len(prompts.findings)} x 2 x "
            f"{prompts.dim} L2-normalised prompt embeddings (present, absent)")
        install(entry, directory, from_file=path, register=True)
    return entry


class HFTextEncoder:
    """The checkpoint's BERT text tower run with ``transformers`` (see module doc)."""

    def __init__(self, folder: Path, text_state: StateDict, model: str) -> None:
        try:
            from transformers import AutoTokenizer, BertConfig, BertModel
        except ImportError as exc:
            raise CheckpointError(
                "embed-prompts needs the `transformers` package on this machine (it is not a "
                "dependency of the node): pip install transformers") from exc
        config = BertConfig.from_pretrained(str(folder))
        pooler = any(k.startswith("pooler.") for k in text_state)
        net = BertModel(config, add_pooling_layer=pooler)
        expected = net.state_dict()
        state = {k: v for k, v in text_state.items()
                 if k in expected or not (k.endswith("embeddings.position_ids")
                                          or k.startswith("cls.") or ".crossattention." in k)}
        if model == "fvlm":
            state["embeddings.token_type_embeddings.weight"] = torch.zeros_like(
                expected["embeddings.token_type_embeddings.weight"])
        load_strict(net, state, what="text tower")
        self._net = net.eval()
        self._tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.description = f"transformers BertModel ({config.num_hidden_layers} layers) from " \
                           f"{folder.name}, weights from the checkpoint"

    def cls_embeddings(self, texts: Sequence[str], max_length: int) -> np.ndarray:
        tokens = self._tokenizer(list(texts), padding="max_length", truncation=True,
                                 max_length=max_length, return_tensors="pt")
        with torch.inference_mode():
            out = self._net(input_ids=tokens["input_ids"],
                            attention_mask=tokens["attention_mask"]).last_hidden_state
        cls: np.ndarray = out[:, 0].float().numpy()
        return cls
