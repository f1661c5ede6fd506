"""``ctnode evaluate``: measure the chest_quant analyzer on labelled real cases or phantoms.

``--cases N`` runs the gap-free phantom cohort (``phantom.cohort``): per-finding
sensitivity, specificity and AUC with 95 % intervals, failed and not-assessed
cases counted. ``--cases DIR`` runs every labelled real case under DIR (LIDC-IDRI
reading files, Lung-PET-CT-Dx boxes): lesions found and missed per readers'
agreement, false positives per scan, FROC, diameter error, finding
probabilities. Both print Markdown tables (``--json`` writes them as JSON too).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from ctnode.settings import get_settings


def evaluate(
    cases: Annotated[str, typer.Option(
        "--cases", "-n",
        help="A number N: a cohort of N phantoms. A folder: every labelled real case in it "
        "(e.g. ../shared/data).")] = "100",
    seed: Annotated[int, typer.Option(help="Seed of the phantom cohort (same seed, same "
                                      "cohort).")] = 0,
    matrix: Annotated[int, typer.Option(help="Phantom matrix (pixels per side).")] = 128,
    json_out: Annotated[Path | None, typer.Option("--json",
                                                  help="Also write the report as JSON.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log each case.")] = False,
    features: Annotated[Path | None, typer.Option(
        help="Issue 16: evaluate the installed heads on a feature cache (ctnode features) "
        "instead; needs --labels.")] = None,
    labels: Annotated[Path | None, typer.Option(help="labels.csv for --features.")] = None,
    report_dir: Annotated[Path, typer.Option(help="Where --features writes its report.")]
    = Path("eval"),
) -> None:
    """Measure the analyzer: real labelled cases (a folder) or a phantom cohort (a number).

    Thresholds come from settings (``inference.analyzer``); the decision
    threshold is ``inference.finding_threshold``. A phantom takes about 5-10 s,
    a real case 20-60 s.
    """
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    if features is not None:
        from ctnode.commands.train import evaluate_features_cli

        evaluate_features_cli(features, labels, report_dir)
        return
    settings = get_settings()
    threshold = settings.inference.finding_threshold
    if cases.isdigit():
        n = int(cases)
        if n < 1:
            raise typer.BadParameter("--cases must be at least 1", param_hint="--cases")
        _phantoms(n, seed, matrix, threshold, json_out)
        return
    root = Path(cases)
    if not root.is_dir():
        raise typer.BadParameter(f"{cases} is neither a number nor a folder",
                                 param_hint="--cases")
    from evaluation.errors import EvaluationError
    from evaluation.real import evaluate_real
    from evaluation.real_report import real_tables, summarise_real

    try:
        results = evaluate_real(root, settings.inference.analyzer, settings.selection)
    except EvaluationError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    summary = summarise_real(results, threshold)
    n_primary = sum(1 for r in results if r.notes.get("primary") == "yes")
    typer.echo(f"chest_quant on {n_primary} labelled real case(s) under {root}:\n")
    typer.echo(real_tables(summary))
    if json_out is not None:
        json_out.write_text(json.dumps(summary.to_json(), indent=2) + "\n", encoding="utf-8")


def _phantoms(n: int, seed: int, matrix: int, threshold: float, json_out: Path | None) -> None:
    from evaluation.phantom_eval import evaluate_cohort

    settings = get_settings()
    report = evaluate_cohort(n, seed, settings.inference.analyzer, threshold, matrix=matrix)
    typer.echo(f"chest_quant on {len(report.cases)} gap-free phantoms (seed {seed}, "
               f"{report.seconds_per_case:.1f} s per case, threshold {report.threshold}; "
               "not assessed and failed cases count as wrong):\n")
    typer.echo(report.table())
    failed = [c for c in report.cases if c.error]
    if failed:
        typer.echo(f"\n{len(failed)} case(s) failed: "
                   + "; ".join(f"case {c.index} (seed {c.seed}): {c.error}" for c in failed))
    if json_out is not None:
        json_out.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
