"""``ctnode worker``: the process that analyses queued studies and sends the results on.

With the embedded SQLite queue (``jobs.backend = "sqlite"``, the default) it
is the worker of the Orthanc deployment: it reads the studies the plugin
queued from Orthanc, runs the pipeline, stores SR + SC in Orthanc and forwards
them to the destination modalities.

Scaled out (``jobs.backend = "celery"``) it is a Celery worker: it serves the
queues in ``jobs.worker_queues`` with ``jobs.concurrency`` processes and runs
jobs of both DICOM doors (SCP spool folders on shared storage, Orthanc
studies over REST). ``ctnode worker --forward``, next to Orthanc, moves the
plugin's queued jobs into Celery. docs/scale-out.md says how to deploy it.

Stop it with Ctrl-C or SIGTERM: a study in progress is finished (Celery's warm
shutdown) or, if the process dies, run again by another worker.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ctnode.settings import Settings, get_settings

if TYPE_CHECKING:
    from jobs.celery_app import HandlerFactory


def celery_handlers(settings: Settings, orthanc_url: str | None = None) -> HandlerFactory:
    """The handler of each door, built in each worker process (its own HTTP client)."""

    def factory(queue):  # type: ignore[no-untyped-def]  # CeleryJobQueue -> handler map
        from orthanc_plugin.host import JOB_SOURCE
        from orthanc_plugin.worker import OrthancJobHandler, make_client
        from orthanc_plugin.worker import worker_settings as orthanc_worker_settings
        from scp_node.handler import ScpJobHandler
        from scp_node.node import SOURCE as SCP_SOURCE
        from scp_node.node import worker_settings as scp_worker_settings

        orthanc = OrthancJobHandler(make_client(settings, orthanc_url), settings,
                                    job_queue=queue)
        return {
            SCP_SOURCE: (ScpJobHandler(settings), scp_worker_settings(settings.scp)),
            JOB_SOURCE: (orthanc, orthanc_worker_settings(settings)),
        }

    return factory


def _warm_up() -> None:
    """Import the pipeline once in the parent: the pool processes share it (copy-on-write).

    Models are not loaded here: a GPU model must initialise CUDA in the process
    that uses it, after the fork.
    """
    import inference.pipeline  # noqa: F401
    import sr_writer  # noqa: F401


def run_celery(settings: Settings, orthanc_url: str | None, hostname: str | None) -> None:
    """Run the Celery worker of this machine until SIGTERM / Ctrl-C."""
    from jobs import celery_config
    from jobs.celery_app import make_celery_app, run_celery_worker

    app = make_celery_app(celery_config(settings), celery_handlers(settings, orthanc_url))
    run_celery_worker(app, settings.jobs.worker_queues, settings.jobs.concurrency,
                      hostname=hostname, loglevel=settings.log_level, warm_up=_warm_up)


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
        min=1, help="Jobs analysed at once (default: settings orthanc.workers, or "
        "jobs.concurrency with the Celery back end).")] = None,
    queues: Annotated[str | None, typer.Option(
        help="Celery back end: comma-separated queues to serve (default: settings "
        "jobs.worker_queues, e.g. ctnode.cpu or ctnode.gpu).")] = None,
    forward: Annotated[bool, typer.Option(
        "--forward", help="Celery back end: only move the Orthanc plugin's queued jobs into "
        "Celery (run one next to Orthanc).")] = False,
    hostname: Annotated[str | None, typer.Option(
        help="Celery back end: worker name shown in Flower (default ctnode@<host>).")]
    = None,
) -> None:
    """Run the worker until interrupted (Orthanc worker, or Celery worker when scaled out)."""
    from ctnode.logging_setup import configure_logging

    settings = get_settings()
    celery = settings.jobs.backend == "celery"
    if forward and not celery:
        raise typer.BadParameter("needs jobs.backend = celery", param_hint="--forward")
    orthanc_updates: dict[str, object] = {}
    jobs_updates: dict[str, object] = {}
    if queue is not None:
        orthanc_updates["queue_path"] = queue
    if destination:
        orthanc_updates["destinations"] = list(destination)
    if workers is not None and celery and not forward:
        jobs_updates["concurrency"] = workers
    elif workers is not None:
        orthanc_updates["workers"] = workers
    if queues is not None:
        jobs_updates["worker_queues"] = [q.strip() for q in queues.split(",") if q.strip()]
    if orthanc_updates or jobs_updates:
        settings = settings.model_copy(update={
            "orthanc": settings.orthanc.model_copy(update=orthanc_updates),
            "jobs": settings.jobs.model_validate(
                {**settings.jobs.model_dump(), **jobs_updates}),
        })
    configure_logging(settings)
    if celery and not forward:
        run_celery(settings, orthanc, hostname or "ctnode@%h")
        return
    from orthanc_plugin.worker import run_orthanc_worker

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run_orthanc_worker(settings, stop, url=orthanc)


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
