"""``ctnode evaluate``: validate the chest_quant analyzer on a generated phantom cohort.

Each phantom has random lesions and a ground truth; the analyzer runs on it as
on a patient. Prints per-finding sensitivity, specificity and AUC, and the
measurement errors, as Markdown tables (``--json`` writes them as JSON too).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from ctnode.settings import get_settings


def evaluate(
    cases: Annotated[int, typer.Option("--cases", "-n", min=1,
                                       help="Number of phantoms in the cohort.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed of the cohort (same seed, same cohort).")] = 0,
    p_each: Annotated[float, typer.Option(
        "--p-each", min=0.0, max=1.0,
        help="Chance that each finding type is inserted into a phantom.")] = 0.3,
    matrix: Annotated[int, typer.Option(help="Phantom matrix (pixels per side).")] = 128,
    slice_mm: Annotated[float, typer.Option("--slice-mm", help="Phantom slice spacing (mm).")]
    = 2.5,
    json_out: Annotated[Path | None, typer.Option("--json",
                                                  help="Also write the report as JSON.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log each case.")] = False,
) -> None:
    """Run the analyzer on a phantom cohort and report detection and measurement accuracy.

    Thresholds come from settings (``inference.analyzer``); the decision
    threshold is ``inference.finding_threshold``. About 3 s per 128-pixel phantom.
    """
    from inference.analyzer.evaluation import evaluate_cohort

    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = get_settings()
    report = evaluate_cohort(
        cases, seed, settings.inference.analyzer, settings.inference.finding_threshold,
        p_each=p_each, spec_kw={"matrix": matrix, "slice_spacing_mm": slice_mm},
    )
    typer.echo(f"chest_quant on {len(report.cases)} phantoms (seed {seed}, "
               f"{report.seconds_per_case:.1f} s per case, threshold {report.threshold}):\n")
    typer.echo(report.table())
    failed = [c for c in report.cases if c.error]
    if failed:
        typer.echo(f"\n{len(failed)} case(s) failed: "
                   + "; ".join(f"seed {c.seed}: {c.error}" for c in failed))
    if json_out is not None:
        json_out.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
