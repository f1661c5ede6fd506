"""The seed's learned model families: where their checkpoints come from, how they load.

Each family (``FAMILIES``) names its architecture builder, the adapter that
maps a checkpoint's keys onto it (published quirks), its source and licence.
A checkpoint reaches a model in one of two ways, both recorded with a SHA-256:

- a published file with a shipped manifest entry (``weights/manifest.json``):
  ``ctnode weights install NAME --from FILE`` checks the promised SHA-256;
- any other file (a published one whose SHA-256 we could not record, a site's
  own training, a colleague's fine-tune): ``ctnode weights add MODEL FILE``
  loads it strictly against the architecture first (a mismatch is refused,
  naming the missing and unexpected keys and the shape differences), then
  installs it under the site entry ``<model>_site`` with its SHA-256.

At start-up a model takes the site entry when there is one, else the shipped
one; every file is checked against its SHA-256 (``weights.checked_file``) and
loaded strictly. A model without weights reports itself "not installed" and
the reason, and does not vote.

This module, and each family's model module (the class the ensemble's
registry names), import neither torch nor MONAI: a node without learned
weights only asks them for their status and never pays for importing those
(several seconds at start-up). The networks live in their own modules
(``Family.builder``), imported when a checkpoint is loaded or checked.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast

from inference.errors import ModelError
from inference.models.base import Model
from inference.models.checkpoint import (
    CheckpointError,
    LayoutReport,
    StateDict,
    compare_layout,
    layout_of,
    load_strict,
    read_state_dict,
)
from inference.models.prompts import PromptEmbeddings
from inference.models.runner import select_device
from inference.types import ModelStatus
from weights import (
    WeightsEntry,
    WeightsError,
    all_entries,
    checked_file,
    install,
    load_site_manifest,
    sha256_of,
)

if TYPE_CHECKING:
    from torch import nn

    from ctnode.settings import Settings

logger = logging.getLogger(__name__)

SITE_SUFFIX = "_site"
PROMPTS_SUFFIX = "_prompts"


@dataclass(frozen=True, slots=True)
class Family:
    """One learned model family (see module doc). Builders are ``"module:function"``."""

    model: str
    title: str
    source: str
    license: str
    input_spec: str
    output_spec: str
    builder: str  # () -> nn.Module at the node's (published) configuration
    adapter: str = ""  # (state, module) -> state, published key quirks; "" = none
    layout_source: str = "own architecture (no public checkpoint)"

    def build(self) -> nn.Module:
        return cast("nn.Module", _resolve(self.builder)())

    def adapt(self, state: StateDict, module: nn.Module) -> StateDict:
        return cast(StateDict, _resolve(self.adapter)(state, module)) if self.adapter else state


def _resolve(spec: str) -> Callable[..., object]:
    module, _, name = spec.partition(":")
    fn: Callable[..., object] = getattr(importlib.import_module(module), name)
    return fn


_CTCLIP_LICENSE = "CC BY-NC-SA 4.0 (CT-CLIP / CT-RATE; non-commercial research use)"
_CTCLIP_INPUT = ("[1, 1, 240, 480, 480] float32: orientation S/L/P, 0.75 x 0.75 x 1.5 mm, "
                 "HU clipped to [-1000, 1000] / 1000, centre crop/pad with -1")

FAMILIES: dict[str, Family] = {
    "ctclip": Family(
        "ctclip", "CT-CLIP zero-shot (CTViT + CXR-BERT prompts)",
        "https://huggingface.co/datasets/ibrahimhamamci/CT-RATE/blob/main/models/"
        "CT-CLIP-Related/CT-CLIP_v2.pt", _CTCLIP_LICENSE, _CTCLIP_INPUT,
        "512-d image latent; with prompt embeddings (ctnode weights embed-prompts) "
        "P(present) for the 18 CT-RATE findings",
        "inference.models.ctclip.clip:build_ctclip",
        "inference.models.ctclip.clip:adapt_ctclip_state",
        "github.com/ibrahimethemhamamci/CT-CLIP@a2a155c6"),
    "ctclip_classfine": Family(
        "ctclip_classfine", "CT-CLIP ClassFine (linear head on CTViT latents)",
        "https://huggingface.co/datasets/ibrahimhamamci/CT-RATE/blob/main/models/"
        "CT-CLIP-Related/CT_LiPro_v2.pt", _CTCLIP_LICENSE, _CTCLIP_INPUT,
        "sigmoid of classifier (18 x 512) on relu(image latent): the 18 CT-RATE findings",
        "inference.models.ctclip.clip:build_ctclip_classfine",
        "inference.models.ctclip.clip:adapt_ctclip_state",
        "github.com/ibrahimethemhamamci/CT-CLIP@a2a155c6"),
    "fvlm": Family(
        "fvlm", "fVLM anatomy-region vision-language model (ViT-B/3D + region queries)",
        "https://drive.google.com/drive/folders/15BnMo1lIAlOH_8KLdB2NugiHnmj9AWSD "
        "(linked from github.com/alibaba-damo-academy/fvlm)",
        "none stated in the fVLM repository (code derived from LAVIS, BSD-3-Clause); "
        "trained on CT-RATE (CC BY-NC-SA 4.0)",
        "per region: [1, 1, D, H, W] float32 crop, orientation S/P/L, 3 x 1 x 1 mm, "
        "HU [-1150, 350] -> [0, 1]",
        "per region and finding: softmax over (present, absent) prompt similarities",
        "inference.models.fvlm:build_fvlm", "inference.models.fvlm:adapt_fvlm_state",
        "github.com/alibaba-damo-academy/fvlm@d768ec15"),
    "mednext": Family(
        "mednext", "MedNeXt 3-D encoder + 22-finding multi-label head",
        "site-trained (no public checkpoint for this task)", "site's own",
        "[1, 1, 112, 176, 176] float32: body crop, orientation S/P/L, 3 x 2 x 2 mm, "
        "HU [-1000, 1000] / 1000",
        "sigmoid of a linear head on the pooled bottleneck: all 22 findings",
        "inference.models.mednext:build_mednext"),
    "diffusion_anomaly": Family(
        "diffusion_anomaly", "Diffusion anomaly detector (2-D DDPM on lung slices)",
        "site-trained on normal studies (ctnode train --anomaly)", "site's own",
        "axial lung slices, lung bounding box resized to 128 x 128, lung window "
        "[-1350, 150] HU -> [-1, 1]",
        "anomaly score (z vs normal studies), anomaly map evidence on the lung findings",
        "inference.models.diffusion_anomaly:build_diffusion_anomaly"),
}


def family(model: str) -> Family:
    """The family of a model name; KeyError lists the known ones."""
    try:
        return FAMILIES[model]
    except KeyError:
        raise KeyError(f"no learned model family {model!r}; known: {', '.join(FAMILIES)}") \
            from None


def meta_layout(model: str) -> dict[str, tuple[int, ...]]:
    """The architecture's names and shapes, built on the meta device (no memory)."""
    import torch

    with torch.device("meta"):
        return layout_of(family(model).build())


def check_checkpoint(model: str, path: Path) -> LayoutReport:
    """How the file's tensors differ from the architecture (after the family's key quirks)."""
    import torch

    fam = family(model)
    with torch.device("meta"):
        module = fam.build()
    state = fam.adapt(read_state_dict(path), module)
    return compare_layout(layout_of(module), layout_of(state))


def load_network(model: str, path: Path, device: str = "cpu") -> nn.Module:
    """The architecture with the file's weights, loaded strictly, frozen, in eval mode."""
    fam = family(model)
    module = fam.build()
    load_strict(module, fam.adapt(read_state_dict(path), module), what=f"{model} checkpoint "
                f"{path.name}")
    module.eval().to(device)
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def add_checkpoint(model: str, file: Path, directory: Path, *, version: str = "") -> WeightsEntry:
    """``ctnode weights add``: check ``file`` strictly, install it as ``<model>_site``.

    Raises ``CheckpointError`` naming every difference when the file does not
    fit the architecture; nothing is installed then.
    """
    fam = family(model)
    report = check_checkpoint(model, file)
    if not report.ok:
        raise CheckpointError(f"{file.name} does not fit the {model} architecture: "
                              f"{report.describe()}")
    digest = sha256_of(file)
    suffix = "".join(file.suffixes[-1:]) or ".pt"
    entry = WeightsEntry(
        name=model + SITE_SUFFIX, version=version or f"site-{digest[:12]}",
        file=f"{model}{SITE_SUFFIX}{suffix}", source=f"added at this site from {file.name}",
        sha256=digest, license=f"as the file's provider states (published family: {fam.license})",
        model=model, input_spec=fam.input_spec, output_spec=fam.output_spec)
    install(entry, directory, from_file=file, register=True)
    logger.info("added %s weights %s (SHA-256 %s)", model, entry.version, digest[:12])
    return entry


def resolve_checkpoint(model: str, directory: Path) -> tuple[Path, WeightsEntry]:
    """The installed checkpoint of a model (site entry first), SHA-256 checked.

    Raises ``WeightsError`` saying how to install one when there is none.
    """
    site_name = model + SITE_SUFFIX
    name = site_name if site_name in load_site_manifest(directory) else model
    entries = all_entries(directory)
    fam = family(model)
    if name in entries and (directory / entries[name].file).is_file():
        return checked_file(name, directory), entries[name]
    if name in entries:
        how = f"`ctnode weights install {model} --from {entries[name].file}` (published file: " \
              f"{fam.source})"
    else:
        how = f"`ctnode weights add {model} FILE` checks a checkpoint against the " \
              f"architecture and installs it (checkpoints: {fam.source})"
    raise WeightsError(f"no checkpoint installed: {how}")


class LearnedModel(Model):
    """Shared start-up and status of the learned families (one network, one checkpoint)."""

    name: ClassVar[str]
    code_version: ClassVar[str] = "1"
    scored: ClassVar[tuple[str, ...]] = ()  # finding keys the model scores when installed
    isolation: ClassVar[str] = "process"

    def __init__(self, net: nn.Module | None, *, device: str = "cpu", weights_version: str = "",
                 weights_sha256: str = "", reason: str = "") -> None:
        self.net = net
        self.device = device
        self.weights_version = weights_version or "uninstalled"
        self.weights_sha256 = weights_sha256
        self._reason = reason

    @classmethod
    def from_settings(cls, settings: Settings) -> LearnedModel:
        """Load the checked checkpoint; a missing or unfit one leaves the model uninstalled.

        The device is chosen only when there is a checkpoint: ``auto`` asks torch.
        """
        device = "cpu"
        try:
            path, entry = resolve_checkpoint(cls.name, settings.weights.directory)
            device = select_device(settings.inference.model_device)
            t0 = time.perf_counter()
            net = load_network(cls.name, path, device)
            logger.info("%s loaded on %s in %.1f s", cls.name, device, time.perf_counter() - t0)
        except WeightsError as exc:
            logger.warning("%s not loaded: %s", cls.name, exc)
            return cls(None, device=device, reason=str(exc))
        model = cls(net, device=device, weights_version=entry.version,
                    weights_sha256=entry.sha256)
        model.after_load(settings)
        return model

    @classmethod
    def weights_present(cls, settings: Settings) -> bool:
        """A checkpoint file of this model is in the weights folder (not yet checked)."""
        directory = settings.weights.directory
        try:
            entries = all_entries(directory)
        except WeightsError:
            return True  # let the worker report the broken manifest
        return any(e.model == cls.name and (directory / e.file).is_file()
                   for e in entries.values() if e.name in (cls.name, cls.name + SITE_SUFFIX))

    def after_load(self, settings: Settings) -> None:  # noqa: B027 - optional hook
        """Load what else the model needs (prompt embeddings); default nothing."""

    @property
    def installed(self) -> bool:
        return self.net is not None

    @property
    def version(self) -> str:
        return f"{self.code_version}+weights-{self.weights_version}"

    @property
    def findings(self) -> tuple[str, ...]:
        """The findings this instance scores (may depend on what was loaded)."""
        return self.scored

    def describe(self) -> str:
        return family(self.name).title

    @property
    def reason(self) -> str:
        """Why the model does not vote (meaningful when not ``installed``)."""
        return self._reason or "no checkpoint"

    @property
    def status(self) -> ModelStatus:
        text = self.describe() + "."
        if not self.installed:
            text += f" Not installed, does not vote: {self.reason}."
        return ModelStatus(self.name, self.version, self.installed, self.findings, text)

    def require(self) -> nn.Module:
        """The network, or the model error a caller gets when it was not loaded."""
        if self.net is None:
            raise ModelError(f"{self.name} is not installed: {self.reason}")
        return self.net


class PromptedModel(LearnedModel):
    """A learned model that also needs its prompt embeddings file (CT-CLIP, fVLM)."""

    prompts: PromptEmbeddings | None = None  # set by after_load / set_prompts
    _prompt_problem = ""

    @property
    def prompt_reason(self) -> str:
        """Why there are no prompts (and how to make them)."""
        return self._prompt_problem or (
            f"no prompt embeddings: run `ctnode weights embed-prompts {self.name} "
            "--text-encoder DIR` where CXR-BERT is available")

    def after_load(self, settings: Settings) -> None:
        name = self.name + PROMPTS_SUFFIX
        directory = settings.weights.directory
        if name not in load_site_manifest(directory):
            return
        try:
            self.set_prompts(PromptEmbeddings.load(checked_file(name, directory)))
        except (WeightsError, ValueError) as exc:
            self._prompt_problem = f"prompt embeddings refused: {exc}"
            logger.error("%s: %s", self.name, self._prompt_problem)

    def check_prompts(self, prompts: PromptEmbeddings) -> None:  # noqa: B027 - optional hook
        """Model-specific checks of prompts (ValueError); default none."""

    def set_prompts(self, prompts: PromptEmbeddings) -> None:
        """Use these prompt embeddings; ValueError when made for another model or checkpoint."""
        if prompts.model != self.name:
            raise ValueError(f"the prompts were made for {prompts.model}, not {self.name}")
        if self.weights_sha256 and prompts.checkpoint_sha256 != self.weights_sha256:
            raise ValueError("the prompts were computed from another checkpoint's text tower "
                             f"(SHA-256 {prompts.checkpoint_sha256[:12]}…, installed "
                             f"{self.weights_sha256[:12]}…); run embed-prompts again")
        self.check_prompts(prompts)
        self.prompts = prompts
