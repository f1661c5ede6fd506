"""``ctnode train --features CACHE --labels labels.csv``: heads, stacker, model cards.

A door onto ``inference.training.train``. Writes every artefact with its model
card and a manifest (SHA-256) into ``--out``; ``--install`` installs them into
the weights directory through the checked manifest path, as
``ctnode weights install NAME --manifest OUT/manifest.json`` would.
``evaluate_features_cli`` is what ``ctnode evaluate --features`` calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ctnode.settings import get_settings


def train(
    labels: Annotated[Path, typer.Option("--labels", exists=True, dir_okay=False,
                                         help="labels.csv: study_uid, finding keys, pathology.")],
    features: Annotated[Path | None, typer.Option(
        "--features", exists=True, file_okay=False,
        help="Feature cache written by `ctnode features` (not with --anomaly).")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Where to write the artefacts (default CACHE/trained).")] = None,
    install: Annotated[bool, typer.Option(
        "--install", help="Install the artefacts into the weights directory (checked).")]
    = False,
    heads_on: Annotated[str, typer.Option(
        "--heads-on", help="Models to train heads on (default: every model with an "
        "embedding, e.g. astra_features).")] = "",
    head_kind: Annotated[str, typer.Option(
        "--head-kind", help="auto (logistic on embeddings, lightgbm on scalar features), "
        "logistic or lightgbm.")] = "auto",
    target_sensitivity: Annotated[float | None, typer.Option(
        "--target-sensitivity", min=0.01, max=1.0,
        help="Default: inference.target_sensitivity.")] = None,
    folds: Annotated[int, typer.Option(min=2, max=20, help="Cross-validation folds.")] = 5,
    seed: Annotated[int, typer.Option(min=0, help="Seed of folds and bootstrap.")] = 0,
    description: Annotated[str, typer.Option(
        "--description", help="Training data description for the model cards.")] = "",
    anomaly: Annotated[bool, typer.Option(  # issue 17
        "--anomaly", help="Train the diffusion anomaly detector on the studies of --inputs "
        "labelled pathology 0 instead.")] = False,
    inputs: Annotated[Path | None, typer.Option(  # issue 17
        "--inputs", help="With --anomaly: the studies (folders, ZIPs, NIfTI files).")] = None,
    epochs: Annotated[int, typer.Option(min=1, help="With --anomaly: training epochs.")] = 30,
) -> None:
    """Train per-finding heads and the LightGBM stacker; write model cards.

    With --anomaly: train the diffusion anomaly detector on normal studies instead."""
    if anomaly:  # issue 17: ctnode/commands/train_anomaly.py
        from ctnode.commands.train_anomaly import train_anomaly_command

        train_anomaly_command(inputs, labels, out, install, epochs, seed)
        return
    if features is None:
        raise typer.BadParameter("needed (or --anomaly)", param_hint="--features")
    from inference.training import LabelsError, TrainOptions, load_dataset
    from inference.training import train as run_training
    from inference.training.card import metrics_table
    from weights import WeightsError, install_listed

    if head_kind not in ("auto", "logistic", "lightgbm"):
        raise typer.BadParameter("must be auto, logistic or lightgbm", param_hint="--head-kind")
    settings = get_settings()
    opt = TrainOptions(
        target_sensitivity=target_sensitivity or settings.inference.target_sensitivity,
        folds=folds, seed=seed, head_kind=head_kind,
        heads_on=tuple(m.strip() for m in heads_on.split(",") if m.strip()) or None,
        data_description=description)
    try:
        result = run_training(load_dataset(features, labels), out or features / "trained", opt)
    except (LabelsError, ValueError) as exc:
        typer.echo(f"cannot train: {exc}", err=True)
        raise typer.Exit(2) from exc
    for a in result.artefacts:
        typer.echo(f"\n{a.name} {a.version} ({a.file}, card {a.card}); out-of-fold metrics:\n")
        typer.echo(metrics_table(a.metrics))
    for s in result.skipped:
        typer.echo(f"\nnot trained: {s}")
    if not result.artefacts:
        typer.echo("\nnothing was trained", err=True)
        raise typer.Exit(1)
    typer.echo(f"\nmanifest: {result.manifest}")
    if install and result.manifest is not None:
        try:
            paths = install_listed(result.manifest, settings.weights.directory)
        except (WeightsError, OSError) as exc:
            typer.echo(f"install failed: {exc}", err=True)
            raise typer.Exit(1) from exc
        typer.echo("installed: " + ", ".join(str(p) for p in paths))


def evaluate_features_cli(features: Path, labels: Path | None, report_dir: Path) -> None:
    """``ctnode evaluate --features CACHE --labels labels.csv``: print and write the report."""
    from inference.training import LabelsError, evaluate_features

    if labels is None:
        raise typer.BadParameter("--features needs --labels", param_hint="--labels")
    try:
        report = evaluate_features(features, labels, report_dir, get_settings())
    except (LabelsError, ValueError) as exc:
        typer.echo(f"cannot evaluate: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(report.table())
    typer.echo(f"\nreport and calibration plots in {report_dir}")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
