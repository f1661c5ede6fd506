"""``diffusion_anomaly``: reconstruction-based anomaly detection with a denoising diffusion model.

A DDPM (Ho et al., 2020; MONAI ``DiffusionModelUNet``) trained only on
*normal* lungs learns what normal lung looks like. Partially noising a study's
lung slices (to timestep ``start_t`` of 1000, as AnoDDPM does: Wyatt et al.,
CVPR Workshops 2022) and denoising them with DDIM (Song et al., 2021) brings
them back towards normal: what the model cannot reconstruct — a nodule, a
consolidation, a fibrotic band — is the anomaly. The anomaly map is the
smoothed absolute reconstruction error inside the lungs; the study's score is
its 99th percentile, reported as a z-score against the normal studies the
model was calibrated on (``ctnode train --anomaly``), and the regions above
the calibrated pixel threshold become ``Evidence`` with a mask.

The detector does not name a finding: it adds ``anomaly_*`` features for the
stacker and an embedding for heads trained with ``ctnode train``. Its regions
are attached as evidence to the lung findings (unassessed by it), so when a
head scores one of them the Secondary Capture draws the anomaly map.

Slices: axial, oriented S/P/L, every ``slice_step_mm`` through the lungs; a
square (in mm) around both lungs resized to ``image_size``; lung window
W 1500 / L -600 HU scaled to [-1, 1].

This module is the network (torch, MONAI) and the numerics around it, imported
when a checkpoint loads or is checked (``Family.builder``) and by training. The
model in the ensemble and its status are in
``inference.models.diffusion_anomaly_model`` (no torch), re-exported here so
that everything of the detector can be imported from one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from monai.networks.nets import DiffusionModelUNet
from monai.networks.schedulers import DDIMScheduler
from scipy import ndimage as ndi
from torch import nn

from inference.errors import ModelError
from inference.models.diffusion_anomaly_model import (
    EMBEDDING_NAMES,
    LUNG_FINDINGS,
    DiffusionAnomalyModel,
)
from inference.models.regions import work_mask_on
from inference.models.volume_prep import Oriented, orient_lps
from inference.types import Evidence
from series_selector.types import HUVolume

__all__ = ["EMBEDDING_NAMES", "LUNG_FINDINGS", "DiffusionAnomalyModel", "DiffusionAnomalyNet",
           "DiffusionConfig", "LungSlices", "anomaly_evidence", "anomaly_maps",
           "build_diffusion_anomaly", "lung_slices", "study_score", "summary"]


@dataclass(frozen=True, slots=True)
class DiffusionConfig:
    """Network and sampling sizes; ``DiffusionConfig()`` is the node's architecture."""

    image_size: int = 128
    channels: tuple[int, ...] = (16, 32, 64)
    attention_levels: tuple[bool, ...] = (False, False, True)
    num_res_blocks: int = 1
    head_channels: int = 16
    norm_groups: int = 16
    train_timesteps: int = 1000
    start_t: int = 250  # partial noising depth (AnoDDPM's lambda = 250 of 1000)
    ddim_stride: int = 50  # DDIM steps of 50: 6 denoising steps, t = 250, 200, ..., 0
    slice_step_mm: float = 10.0
    window_hu: tuple[float, float] = (-1350.0, 150.0)  # lung window W 1500 / L -600
    box_margin: float = 0.1  # around both lungs, of the larger extent
    smooth_px: float = 1.0
    top_regions: int = 3
    seed: int = 20240601  # fixed noise: the same study gives the same map


class DiffusionAnomalyNet(nn.Module):
    """The denoising U-Net and the normal-study calibration (buffers, saved with it)."""

    pixel_threshold: torch.Tensor
    score_mean: torch.Tensor
    score_std: torch.Tensor

    def __init__(self, c: DiffusionConfig | None = None) -> None:
        super().__init__()
        c = c or DiffusionConfig()
        self.config = c
        self.unet = DiffusionModelUNet(
            spatial_dims=2, in_channels=1, out_channels=1, channels=c.channels,
            attention_levels=c.attention_levels, num_res_blocks=c.num_res_blocks,
            num_head_channels=c.head_channels, norm_num_groups=c.norm_groups)
        self.register_buffer("pixel_threshold", torch.tensor(float("nan")))
        self.register_buffer("score_mean", torch.tensor(float("nan")))
        self.register_buffer("score_std", torch.tensor(float("nan")))

    @property
    def calibrated(self) -> bool:
        return bool(torch.isfinite(self.pixel_threshold) and torch.isfinite(self.score_std))

    def reconstruct(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Noise ``x`` (n, 1, S, S) to ``start_t`` and denoise it with DDIM."""
        c = self.config
        sched = DDIMScheduler(num_train_timesteps=c.train_timesteps)
        sched.set_timesteps(c.train_timesteps // c.ddim_stride)
        noise = torch.randn(x.shape, generator=generator).to(x)
        t0 = torch.full((x.shape[0],), c.start_t, dtype=torch.long, device=x.device)
        sample = sched.add_noise(x, noise, t0)
        for t in sched.timesteps:
            if int(t) > c.start_t:
                continue
            tt = torch.full((x.shape[0],), int(t), dtype=torch.long, device=x.device)
            sample, _ = sched.step(self.unet(sample, tt), int(t), sample)
        return sample


def build_diffusion_anomaly() -> DiffusionAnomalyNet:
    return DiffusionAnomalyNet(DiffusionConfig())


@dataclass(frozen=True, slots=True, eq=False)
class LungSlices:
    """Sampled axial lung slices of one study and where they came from."""

    images: np.ndarray  # (n, S, S) float32 in [-1, 1]
    lungs: np.ndarray  # (n, S, S) bool
    slices: np.ndarray  # (n,) oriented slice index of each
    box: tuple[float, float, float, float]  # oriented (p0, l0, side_p, side_l), pixels
    oriented: Oriented


def lung_slices(volume: HUVolume, lungs_work: np.ndarray, factors: tuple[int, int, int],
                c: DiffusionConfig) -> LungSlices:
    """Sample and normalise the lung slices (see module doc). ModelError when no lung."""
    o = orient_lps(volume)
    lung = work_mask_on(lungs_work, factors, o, o.voxels.shape)
    zs = np.nonzero(lung.any(axis=(1, 2)))[0]
    if zs.size == 0:
        raise ModelError("no lung in the volume for the anomaly detector")
    step = max(1, int(round(c.slice_step_mm / o.spacing[0])))
    slices = np.arange(zs.min(), zs.max() + 1, step)
    ps, ls = np.nonzero(lung.any(axis=0))
    sp, sl = o.spacing[1], o.spacing[2]
    side_mm = max((ps.max() - ps.min() + 1) * sp, (ls.max() - ls.min() + 1) * sl)
    side_mm *= 1 + c.box_margin
    side_p, side_l = side_mm / sp, side_mm / sl
    p0 = (ps.min() + ps.max() + 1) / 2 - side_p / 2
    l0 = (ls.min() + ls.max() + 1) / 2 - side_l / 2
    s = c.image_size
    rows = np.clip(np.floor(p0 + (np.arange(s) + 0.5) * side_p / s).astype(int), -1, None)
    cols = np.clip(np.floor(l0 + (np.arange(s) + 0.5) * side_l / s).astype(int), -1, None)
    lo, hi = c.window_hu
    images = np.empty((slices.size, s, s), dtype=np.float32)
    masks = np.zeros((slices.size, s, s), dtype=bool)
    for i, k in enumerate(slices):
        plane = np.clip(np.asarray(o.voxels[k], dtype=np.float32), lo, hi)
        images[i] = _sample(plane, p0, l0, side_p, side_l, s, fill=lo)
        masks[i] = _take(lung[k], rows, cols)
    scaled = (2 * (images - lo) / (hi - lo) - 1).astype(np.float32)
    return LungSlices(scaled, masks, slices, (float(p0), float(l0), side_p, side_l), o)


def _sample(plane: np.ndarray, p0: float, l0: float, side_p: float, side_l: float, size: int,
            fill: float) -> np.ndarray:
    """The square box of a slice, resized to size x size (area-averaged, padded with fill)."""
    n_p, n_l = plane.shape
    a0, b0 = int(np.floor(p0)), int(np.floor(l0))
    a1, b1 = int(np.ceil(p0 + side_p)), int(np.ceil(l0 + side_l))
    padded = np.full((a1 - a0, b1 - b0), fill, dtype=np.float32)
    sa, sb = max(a0, 0), max(b0, 0)
    ea, eb = min(a1, n_p), min(b1, n_l)
    padded[sa - a0:ea - a0, sb - b0:eb - b0] = plane[sa:ea, sb:eb]
    t = torch.from_numpy(padded)[None, None]
    out: np.ndarray = F.interpolate(t, size=(size, size), mode="area")[0, 0].numpy()
    return out


def _take(mask: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    inside = (rows >= 0) & (rows < mask.shape[0])
    inside_c = (cols >= 0) & (cols < mask.shape[1])
    out = mask[np.ix_(np.clip(rows, 0, mask.shape[0] - 1), np.clip(cols, 0, mask.shape[1] - 1))]
    return out & inside[:, None] & inside_c[None, :]


def anomaly_maps(net: DiffusionAnomalyNet, ls: LungSlices, device: str = "cpu",
                 batch: int = 16) -> np.ndarray:
    """Smoothed |reconstruction - input| per slice, zero outside the lungs, (n, S, S)."""
    gen = torch.Generator().manual_seed(net.config.seed)
    out = np.empty_like(ls.images)
    with torch.inference_mode():
        for i in range(0, len(ls.images), batch):
            x = torch.from_numpy(ls.images[i:i + batch])[:, None].to(device)
            rec = net.reconstruct(x, gen)
            out[i:i + batch] = (rec - x).abs()[:, 0].float().cpu().numpy()
    smooth = ndi.gaussian_filter(out, sigma=(0, net.config.smooth_px, net.config.smooth_px))
    return np.where(ls.lungs, smooth, 0.0).astype(np.float32)


def study_score(maps: np.ndarray, lungs: np.ndarray) -> float:
    """The study's anomaly score: 99th percentile of the map inside the lungs."""
    values = maps[lungs]
    return float(np.percentile(values, 99)) if values.size else 0.0


def summary(maps: np.ndarray, ls: LungSlices, net: DiffusionAnomalyNet) -> dict[str, float]:
    """Named anomaly statistics of one study (the embedding, in ``EMBEDDING_NAMES`` order)."""
    values = maps[ls.lungs]
    score = study_score(maps, ls.lungs)
    tau = float(net.pixel_threshold)
    z = (score - float(net.score_mean)) / max(float(net.score_std), 1e-6)
    thirds = np.array_split(np.arange(len(maps)), 3)  # oriented index grows cranially
    zone = [float(maps[t][ls.lungs[t]].mean()) if ls.lungs[t].any() else 0.0 for t in thirds]
    return {
        "score": score, "z": float(z), "fraction_above": float((values > tau).mean()),
        "p95": float(np.percentile(values, 95)), "p99_9": float(np.percentile(values, 99.9)),
        "mean": float(values.mean()), "upper": zone[2], "middle": zone[1], "lower": zone[0],
    }


def anomaly_evidence(maps: np.ndarray, ls: LungSlices, volume: HUVolume, tau: float,
                     top: int) -> tuple[Evidence, ...]:
    """The ``top`` regions above ``tau`` (by summed excess) as Evidence on the source grid."""
    labels, n = ndi.label(maps > tau)
    if n == 0:
        return ()
    excess = ndi.sum(maps - tau, labels, index=np.arange(1, n + 1))
    o = ls.oriented
    p0, l0, side_p, side_l = ls.box
    s = maps.shape[1]
    half = max(1, int(np.ceil((ls.slices[1] - ls.slices[0]) / 2))) if len(ls.slices) > 1 else 1
    out = []
    for lab in np.argsort(-excess)[:top] + 1:
        comp = labels == lab
        js, us, vs = np.nonzero(comp)
        k0 = max(0, int(ls.slices[js.min()]) - half + 1)
        k1 = min(o.voxels.shape[0], int(ls.slices[js.max()]) + half)
        a0 = max(0, int(np.floor(p0 + us.min() * side_p / s)))
        a1 = min(o.voxels.shape[1], int(np.ceil(p0 + (us.max() + 1) * side_p / s)))
        b0 = max(0, int(np.floor(l0 + vs.min() * side_l / s)))
        b1 = min(o.voxels.shape[2], int(np.ceil(l0 + (vs.max() + 1) * side_l / s)))
        if k1 <= k0 or a1 <= a0 or b1 <= b0:
            continue
        nearest = np.abs(np.arange(k0, k1)[:, None] - ls.slices[None, :]).argmin(axis=1)
        u = np.clip(((np.arange(a0, a1) + 0.5 - p0) * s / side_p).astype(int), 0, s - 1)
        v = np.clip(((np.arange(b0, b1) + 0.5 - l0) * s / side_l).astype(int), 0, s - 1)
        sub = comp[np.ix_(nearest, u, v)]
        if not sub.any():
            continue
        bbox, mask = o.box_to_source(((k0, k1), (a0, a1), (b0, b1)), sub)
        centre_o = np.argwhere(sub).mean(axis=0) + np.array([k0, a0, b0])
        z, y, x = o.source_index((centre_o[0], centre_o[1], centre_o[2]))
        ratio = float((maps[comp]).max() / tau) if tau > 0 else float("inf")
        out.append(Evidence(
            description=f"diffusion anomaly region (reconstruction error up to {ratio:.1f} x "
                        "the normal-study threshold)",
            slice_index=int(round(z)), center_lps=volume.index_to_lps(z, y, x),
            volume_ml=float(sub.sum()) * volume.voxel_volume_ml, bbox=bbox, mask=mask))
    return tuple(out)
