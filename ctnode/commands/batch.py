"""``ctnode batch``: send a folder of ZIP / NIfTI studies to the node, results to a spreadsheet.

The same command is ``python -m api.batch_inference_client`` (the seed's name,
kept for existing scripts).
"""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType
from typing import Annotated

import httpx
import typer
from rich.console import Console

from api.batch import (
    ApiClient,
    BatchError,
    LocalProcessor,
    RichReporter,
    discover_inputs,
    output_format,
    print_summary,
    run_batch,
)
from api.batch.runner import Processor
from ctnode.logging_setup import configure_logging
from ctnode.settings import get_settings

EXIT_INCOMPLETE = 1
"""Some files got no usable answer (network, timeout, 5xx): run again to retry them."""
EXIT_INTERRUPTED = 130


def batch(
    input_dir: Annotated[Path, typer.Option("--input-dir", "-i",
                                            help="Folder holding the .zip / .nii / .nii.gz "
                                            "studies, one study per file.")],
    output: Annotated[Path, typer.Option("--output", "-o",
                                         help="Results file: .xlsx (default) or .csv.")]
    = Path("results.xlsx"),
    api_url: Annotated[str | None, typer.Option(
        "--api-url", help="Base URL of the node's API (default: settings batch.api_url, "
        "http://127.0.0.1:8000).")] = None,
    local: Annotated[bool, typer.Option(
        "--local", help="Run the pipeline in this process instead of calling an API.")] = False,
    csv: Annotated[bool, typer.Option(
        "--csv", help="Write CSV instead of xlsx (also chosen by an --output ending in .csv).")]
    = False,
    concurrency: Annotated[int | None, typer.Option(
        min=1, max=64, help="Files in flight at once (default: settings batch.concurrency; "
        "1 with --local).")] = None,
    timeout: Annotated[float | None, typer.Option(
        min=1, help="Per-request time limit in seconds (default: settings batch.timeout_s).")]
    = None,
    retries: Annotated[int | None, typer.Option(
        min=0, max=10, help="Retries after a network error, timeout or HTTP 5xx (default: "
        "settings batch.retries).")] = None,
    api_key: Annotated[str | None, typer.Option(
        "--api-key", help="Sent as X-API-Key (default: settings api.api_key).")] = None,
    recursive: Annotated[bool, typer.Option(
        "--recursive", help="Also look in sub-folders.")] = False,
    resume: Annotated[bool, typer.Option(
        "--resume/--no-resume", help="Skip files already in the output (default) or start "
        "over.")] = True,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Progress bar only, no line per file.")] = False,
) -> None:
    """Analyse every study in a folder and write one row per file (plus a summary sheet).

    Resumable: a second run skips files already in the output (those that got no
    answer are tried again). Ctrl-C saves what is done. Exit status: 0 all
    files answered, 1 some got no answer (run again), 2 bad arguments or
    unreachable API, 130 interrupted.
    """
    settings = get_settings()
    configure_logging(settings)
    console = Console(stderr=True)
    fmt = output_format(output, csv)
    try:
        inputs = discover_inputs(input_dir, recursive=recursive)
    except BatchError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(code=2) from exc

    client: ApiClient | None = None
    process: Processor
    if local:
        process = LocalProcessor(settings)
        target = "local (in-process pipeline)"
        workers = concurrency or 1
    else:
        url = api_url or settings.batch.api_url
        key = api_key or (settings.api.api_key.get_secret_value() if settings.api.api_key
                          else None)
        client = ApiClient(url, timeout_s=timeout or settings.batch.timeout_s,
                           retries=settings.batch.retries if retries is None else retries,
                           backoff_s=settings.batch.backoff_s, api_key=key)
        try:
            health = client.health()
        except (httpx.HTTPError, ValueError) as exc:
            client.close()
            console.print(f"[red]error:[/] the API at {url} does not answer GET /health ({exc}); "
                          "start it with `ctnode serve` or pass --api-url (or use --local)")
            raise typer.Exit(code=2) from exc
        console.print(f"API {url}: {health.get('status', '?')}"
                      + (f", version {health['version']}" if "version" in health else ""))
        process, target, workers = client, url, concurrency or settings.batch.concurrency

    reporter = RichReporter(console, per_file=not quiet)
    # A service manager or a CI timeout stops us with SIGTERM: save like on Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    try:
        outcome = run_batch(
            inputs, output, process, fmt=fmt, concurrency=workers,
            input_label=str(input_dir), target=target,
            checkpoint_s=settings.batch.checkpoint_s, resume=resume, reporter=reporter,
            on_stop=client.stop if client is not None else None,
        )
    except BatchError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(code=2) from exc
    finally:
        if client is not None:
            client.close()
    print_summary(console, outcome, str(output))
    if outcome.info.interrupted:
        console.print(f"[yellow]interrupted[/]: {output} holds the {len(outcome.rows)} files "
                      "done; run the same command again to continue")
        raise typer.Exit(code=EXIT_INTERRUPTED)
    if outcome.summary.no_answer:
        console.print(f"[yellow]{outcome.summary.no_answer} files got no answer[/]; run the "
                      "same command again to retry them")
        raise typer.Exit(code=EXIT_INCOMPLETE)


def _interrupt_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def register(app: typer.Typer) -> None:
    app.command("batch")(batch)
