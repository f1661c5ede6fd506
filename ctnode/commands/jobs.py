"""``ctnode jobs``: the operator's view of the job queue; ``ctnode jobs retry ID``.

Reads the queue the settings choose: the SQLite file every door of this node
shares (``<node.work_dir>/jobs.sqlite3`` unless ``--queue`` names another), or
with ``jobs.backend = celery`` the job records in Redis, with the messages
waiting in each Celery queue.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ctnode.settings import get_settings

if TYPE_CHECKING:
    from jobs import Job, JobQueue

jobs_app = typer.Typer(help="List jobs with state and reason; retry one.", no_args_is_help=False)

QueueOption = Annotated[Path | None, typer.Option(
    help="SQLite job queue file (default: the settings' queue: <node.work_dir>/jobs.sqlite3, "
    "or Redis with jobs.backend = celery).")]


def _queue(path: Path | None) -> JobQueue:
    from jobs import SqliteJobQueue, default_queue_path, make_queue

    settings = get_settings()
    if path is None and settings.jobs.backend == "celery":
        return make_queue(settings)
    target = path or default_queue_path(settings.node.work_dir)
    if not target.exists():
        raise typer.BadParameter(f"no job queue at {target}", param_hint="--queue")
    return SqliteJobQueue(target)


def _unreachable(exc: Exception) -> typer.Exit:
    """Redis down or refusing: say so in one line (no traceback, no URL: it may hold a password)."""
    typer.echo(f"job queue not reachable: {type(exc).__name__}: {exc}", err=True)
    return typer.Exit(2)


def _backend_errors() -> tuple[type[Exception], ...]:
    try:
        import redis
    except ImportError:  # the SQLite back end needs no Redis client
        return ()
    return (redis.RedisError,)


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else "-"


@jobs_app.callback(invoke_without_command=True)
def list_jobs(
    ctx: typer.Context,
    state: Annotated[str | None, typer.Option(
        help="Only this state: queued, running, done, failed, delivered.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Most jobs listed (newest first).")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per job.")] = False,
    queue: QueueOption = None,
) -> None:
    """List jobs, newest first: id, state, attempts, source, study, updated, reason."""
    if ctx.invoked_subcommand is not None:
        return
    from jobs import JobState

    try:
        wanted = JobState(state) if state else None
    except ValueError as exc:
        raise typer.BadParameter(f"unknown state {state!r}", param_hint="--state") from exc
    q = _queue(queue)
    try:
        listed = q.list(wanted, limit)
        counts = q.counts()
        waiting = q.queue_lengths()
    except _backend_errors() as exc:
        raise _unreachable(exc) from exc
    if as_json:
        for job in listed:
            typer.echo(json.dumps(_job_dict(job), sort_keys=True))
        return
    typer.echo("  ".join(f"{k}: {v}" for k, v in counts.items()))
    if waiting:
        label = "waiting in queue" if q.push_based else "queued per door"
        typer.echo(f"{label}: " + "  ".join(f"{k}: {v}" for k, v in sorted(waiting.items())))
    typer.echo(f"{'ID':>5}  {'STATE':<9}  {'TRY':>3}  {'SOURCE':<7}  {'UPDATED':<19}  "
               "STUDY / REASON")
    for job in listed:
        typer.echo(f"{job.id:>5}  {job.state.value:<9}  {job.attempts:>3}  {job.source:<7}  "
                   f"{_when(job.updated_at):<19}  {job.study_uid}")
        if job.reason:
            typer.echo(f"{'':>52}{job.reason}")


@jobs_app.command("retry")
def retry_job(
    job_id: Annotated[int, typer.Argument(help="Job id from `ctnode jobs`.")],
    queue: QueueOption = None,
) -> None:
    """Put a finished or failed job back in the queue with a fresh attempt count."""
    from jobs import JobError

    try:
        job = _queue(queue).retry(job_id)
    except _backend_errors() as exc:
        raise _unreachable(exc) from exc
    except JobError as exc:
        typer.echo(f"not retried: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"job {job.id} queued again (study {job.study_uid})")


@jobs_app.command("show")
def show_job(
    job_id: Annotated[int, typer.Argument(help="Job id from `ctnode jobs`.")],
    queue: QueueOption = None,
) -> None:
    """Print one job as JSON, with its recorded result."""
    job = _queue(queue).get(job_id)
    if job is None:
        typer.echo(f"no job {job_id}", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(_job_dict(job), indent=2, sort_keys=True))


def _job_dict(job: Job) -> dict[str, object]:
    result: object = job.result_json
    if job.result_json:
        try:
            result = json.loads(job.result_json)
        except ValueError:
            pass
    return {
        "id": job.id, "state": job.state.value, "attempts": job.attempts,
        "source": job.source, "study_uid": job.study_uid, "locator": job.locator,
        "content_hash": job.content_hash, "n_instances": job.n_instances,
        "reason": job.reason, "worker": job.worker, "queue": job.queue,
        "created_at": job.created_at,
        "updated_at": job.updated_at, "not_before": job.not_before, "result": result,
    }


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")
