"""``ctnode train --anomaly``: the diffusion anomaly detector on a site's normal studies (issue 17).

A door onto ``inference.models.diffusion_train.run_anomaly_training``: the
studies under ``--inputs`` that ``--labels`` marks ``pathology`` = 0 train the
denoiser, held-out normal studies calibrate it; ``--install`` checks the
checkpoint against the architecture and installs it as the site's
``diffusion_anomaly`` weights.
"""

from __future__ import annotations

from pathlib import Path

import typer

from ctnode.settings import get_settings


def train_anomaly_command(inputs: Path | None, labels: Path, out: Path | None, install: bool,
                          epochs: int, seed: int) -> None:
    from inference.models.diffusion_train import AnomalyTrainOptions, run_anomaly_training
    from inference.training import LabelsError
    from weights import WeightsError

    if inputs is None or not inputs.is_dir():
        raise typer.BadParameter("--anomaly needs --inputs DIR (the studies: folders, ZIPs or "
                                 "NIfTI files)", param_hint="--inputs")
    settings = get_settings()
    target = out or inputs.parent / "anomaly_trained"
    opt = AnomalyTrainOptions(epochs=epochs, seed=seed)
    try:
        path, report = run_anomaly_training(
            inputs, labels, target, settings, opt, install=install,
            on_study=lambda key, outcome: typer.echo(f"{key}: {outcome}"))
    except (LabelsError, ValueError) as exc:
        typer.echo(f"cannot train: {exc}", err=True)
        raise typer.Exit(2) from exc
    except (WeightsError, OSError) as exc:
        typer.echo(f"trained but not installed: {exc}", err=True)
        raise typer.Exit(1) from exc
    cal = "held-out normal studies" if report.held_out else "the training studies (fewer " \
          "than 5 normal studies: no hold-out)"
    typer.echo(f"trained on {report.studies - report.calibration_studies * report.held_out} "
               f"normal studies ({report.slices} slices), {epochs} epochs, final loss "
               f"{report.losses[-1]:.4f}; calibrated on {cal}: pixel threshold "
               f"{report.pixel_threshold:.4f}, score {report.score_mean:.4f} ± "
               f"{report.score_std:.4f}\ncheckpoint: {path}" + ("\ninstalled" if install else ""))
