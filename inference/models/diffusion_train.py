"""Training the diffusion anomaly detector on a site's normal studies (``ctnode train --anomaly``).

The detector must learn *normal* lung only, so it is trained on the studies
that ``labels.csv`` marks ``pathology`` = 0 (the ML loop's labels file; issue
16). Training is the standard DDPM objective (predict the added noise at a
random timestep; Ho et al., 2020). Calibration then runs the detector on
held-out normal studies (a fifth of them, at least one, when there are five
or more; otherwise on the training studies, which the card says): the pixel
threshold is the ``pixel_quantile`` of their lung reconstruction errors and
the score distribution gives the z-score. Both are saved in the checkpoint.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from monai.networks.schedulers import DDPMScheduler

from ctnode.settings import AnalyzerSettings, Settings
from inference.models.diffusion_anomaly import (
    DiffusionAnomalyNet,
    DiffusionConfig,
    LungSlices,
    anomaly_maps,
    lung_slices,
    study_score,
)
from inference.models.regions import analyzer_regions
from series_selector import index_path, load_nifti, load_volume, select_series
from series_selector.archive import ArchiveLimits, extract_zip
from series_selector.types import HUVolume

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "diffusion_anomaly.pt"


@dataclass(frozen=True, slots=True)
class AnomalyTrainOptions:
    epochs: int = 30
    batch: int = 16
    lr: float = 2e-4
    seed: int = 0
    pixel_quantile: float = 99.5  # normal lung pixels above the threshold: 0.5 %
    device: str = "cpu"


@dataclass(slots=True)
class AnomalyTrainingReport:
    studies: int = 0
    calibration_studies: int = 0
    held_out: bool = False
    slices: int = 0
    losses: list[float] = field(default_factory=list)
    pixel_threshold: float = float("nan")
    score_mean: float = float("nan")
    score_std: float = float("nan")
    seconds: float = 0.0


def study_slices(volume: HUVolume, c: DiffusionConfig, analyzer: AnalyzerSettings | None = None
                 ) -> LungSlices:
    regions = analyzer_regions(volume, analyzer, organs=False)
    return lung_slices(volume, regions.masks["lung"], regions.grid.factors, c)


def train_anomaly(studies: Sequence[LungSlices], c: DiffusionConfig,
                  opt: AnomalyTrainOptions | None = None,
                  on_epoch: Callable[[int, float], None] | None = None,
                  ) -> tuple[DiffusionAnomalyNet, AnomalyTrainingReport]:
    """Train on the normal studies' lung slices, then calibrate (see module doc)."""
    opt = opt or AnomalyTrainOptions()
    if not studies:
        raise ValueError("the anomaly detector needs at least one normal study to train on")
    t0 = time.perf_counter()
    torch.manual_seed(opt.seed)
    n_cal = max(1, len(studies) // 5) if len(studies) >= 5 else 0
    train_set = studies[:len(studies) - n_cal] if n_cal else studies
    calibration = studies[len(studies) - n_cal:] if n_cal else studies
    images = torch.from_numpy(np.concatenate([s.images for s in train_set]))[:, None]
    net = DiffusionAnomalyNet(c).to(opt.device)
    sched = DDPMScheduler(num_train_timesteps=c.train_timesteps)
    optimiser = torch.optim.AdamW(net.unet.parameters(), lr=opt.lr)
    gen = torch.Generator().manual_seed(opt.seed)
    report = AnomalyTrainingReport(len(studies), len(calibration), bool(n_cal), len(images))
    net.train()
    for epoch in range(opt.epochs):
        order = torch.randperm(len(images), generator=gen)
        total = 0.0
        for i in range(0, len(images), opt.batch):
            x = images[order[i:i + opt.batch]].to(opt.device)
            noise = torch.randn(x.shape, generator=gen).to(x)
            t = torch.randint(0, c.train_timesteps, (x.shape[0],), generator=gen).to(opt.device)
            loss = F.mse_loss(net.unet(sched.add_noise(x, noise, t), t), noise)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * x.shape[0]
        report.losses.append(total / len(images))
        if on_epoch is not None:
            on_epoch(epoch, report.losses[-1])
    net.eval()
    calibrate(net, calibration, opt)
    report.pixel_threshold = float(net.pixel_threshold)
    report.score_mean, report.score_std = float(net.score_mean), float(net.score_std)
    report.seconds = time.perf_counter() - t0
    return net, report


def calibrate(net: DiffusionAnomalyNet, studies: Sequence[LungSlices],
              opt: AnomalyTrainOptions) -> None:
    """Set the pixel threshold and the score distribution from normal studies."""
    maps = [anomaly_maps(net, s, opt.device) for s in studies]
    pixels = np.concatenate([m[s.lungs] for m, s in zip(maps, studies, strict=True)])
    scores = np.array([study_score(m, s.lungs) for m, s in zip(maps, studies, strict=True)])
    net.pixel_threshold.fill_(float(np.percentile(pixels, opt.pixel_quantile)))
    net.score_mean.fill_(float(scores.mean()))
    # one study has no spread: fall back to the pixel scale so z stays finite and meaningful
    spread = float(scores.std(ddof=1)) if len(scores) > 1 else float(pixels.std())
    net.score_std.fill_(max(spread, 1e-6))


def load_study(source: Path, settings: Settings) -> HUVolume:
    """The analysable series of one input (NIfTI file, DICOM folder or ZIP), as the pipeline
    would choose it."""
    budget = int(settings.limits.study_memory_mb * 1e6)
    if source.name.lower().endswith((".nii", ".nii.gz")):
        return load_nifti(source, budget)
    temp = None
    try:
        folder = source
        if source.is_file():
            temp = Path(tempfile.mkdtemp(prefix="ctnode-anomaly-", dir=settings.node.temp_dir))
            folder = temp / "input"
            api = settings.api
            extract_zip(source, folder, ArchiveLimits(
                api.max_archive_members, int(api.max_uncompressed_mb * 1e6),
                api.max_compression_ratio))
        index = index_path(folder, int(settings.limits.max_instance_mb * 1e6))
        return load_volume(index, select_series(index, settings.selection))
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def _input_key(source: Path, volume: HUVolume) -> str:
    """The labels-file key of an input: a NIfTI's file name without suffix, else its study."""
    name = source.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return volume.study_uid


def run_anomaly_training(input_dir: Path, labels_file: Path, out_dir: Path, settings: Settings,
                         opt: AnomalyTrainOptions | None = None, c: DiffusionConfig | None = None,
                         *, install: bool = False,
                         on_study: Callable[[str, str], None] | None = None,
                         ) -> tuple[Path, AnomalyTrainingReport]:
    """``ctnode train --anomaly``: train on the inputs labelled ``pathology`` 0, save, install.

    Writes ``out_dir/diffusion_anomaly.pt``; with ``install`` it is checked
    against the architecture and installed as the site's ``diffusion_anomaly``
    weights (``ctnode weights add``). ``on_study(key, outcome)`` reports progress.
    """
    from inference.models.learned import add_checkpoint
    from inference.training.extract import list_inputs
    from inference.training.labels import PATHOLOGY, read_labels

    c = c or DiffusionConfig()
    labels = read_labels(labels_file)
    normal: list[LungSlices] = []
    for source in list_inputs(input_dir):
        try:
            volume = load_study(source, settings)
        except Exception as exc:  # noqa: BLE001 - one unreadable study must not stop training
            logger.warning("anomaly training: input skipped (%s)", type(exc).__name__)
            if on_study:
                on_study(source.name, f"skipped ({type(exc).__name__})")
            continue
        key = _input_key(source, volume)
        if labels.values.get(key, {}).get(PATHOLOGY) != 0:
            if on_study:
                on_study(key, "not labelled normal")
            continue
        normal.append(study_slices(volume, c, settings.inference.analyzer))
        if on_study:
            on_study(key, "normal")
    net, report = train_anomaly(normal, c, opt)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / CHECKPOINT_NAME
    torch.save(net.state_dict(), path)
    if install:
        add_checkpoint("diffusion_anomaly", path, settings.weights.directory,
                       version=f"trained-{time.strftime('%Y%m%d')}-{report.studies}normal")
    return path, report
