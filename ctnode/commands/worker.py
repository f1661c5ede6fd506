"""``ctnode worker --orthanc URL``: process the jobs the Orthanc plugin queued.

The worker runs in the project's virtualenv (the plugin inside Orthanc only
queues); it reads studies from Orthanc, runs the pipeline, stores SR + SC in
Orthanc and forwards them to the destination modalities. Stop it with Ctrl-C or
SIGTERM: a job in progress is finished or, if the process dies, taken over by
the next worker once its lease expires.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from ctnode.settings import get_settings


def worker(
    orthanc: Annotated[str | None, typer.Option(
        "--orthanc", help="Orthanc REST URL (default: settings orthanc.url). Credentials come "
        "from CTNODE_ORTHANC__USERNAME / CTNODE_ORTHANC__PASSWORD.")] = None,
    queue: Annotated[Path | None, typer.Option(
        help="Job queue file shared with the plugin (default: settings orthanc.queue_path, "
        "else <node.work_dir>/jobs.sqlite3).")] = None,
    destination: Annotated[list[str] | None, typer.Option(
        help="Orthanc modality name to forward results to (repeatable; default: settings "
        "orthanc.destinations).")] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, help="Jobs analysed at once (default: settings orthanc.workers).")] = None,
) -> None:
    """Run the Orthanc worker until interrupted."""
    from ctnode.logging_setup import configure_logging
    from orthanc_plugin.worker import run_orthanc_worker

    settings = get_settings()
    updates: dict[str, object] = {}
    if queue is not None:
        updates["queue_path"] = queue
    if destination:
        updates["destinations"] = list(destination)
    if workers is not None:
        updates["workers"] = workers
    if updates:
        settings = settings.model_copy(
            update={"orthanc": settings.orthanc.model_copy(update=updates)}
        )
    configure_logging(settings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run_orthanc_worker(settings, stop, url=orthanc)


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
