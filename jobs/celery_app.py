"""The Celery side of the scaled-out queue: the app, its one task, and the worker runner.

One task, ``ctnode.jobs.run(job_id)``, runs any job: it takes the job through
its Redis record (``CeleryJobQueue.take``) and hands it to the same
``jobs.Worker`` the SQLite back end uses, so leases, attempts, backoff and
outcome recording are the same code. What Celery adds (configured below):

* late acknowledgement: a message is acknowledged only after the job's
  outcome is recorded. A worker process killed mid-study (SIGKILL, out of
  memory) has its message requeued at once by the surviving parent
  (``task_reject_on_worker_lost``); a whole machine lost has it restored by
  Redis after ``visibility_timeout``. Either way the next take sees the dead
  holder and takes over; after ``max_attempts`` such losses the job fails
  with its reason instead of looping;
* prefetch 1: a process reserves no message beyond the one it runs;
* retries: the ``Worker`` defers the record and ``CeleryJobQueue.defer``
  sends a new message due after the backoff;
* routing: messages go to the CPU or GPU queue; each worker serves the
  queues its settings name.

The handlers (what a job of each door does) are given by the caller as a
factory, called once in each worker process, so this module imports no door.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery, signals
from celery.exceptions import Reject, Retry

from jobs.celery_queue import TASK_NAME, CeleryJobQueue
from jobs.types import CeleryConfig, JobState, TakeKind, WorkerSettings
from jobs.worker import Handler, Worker, default_worker_name, process_is_gone

logger = logging.getLogger(__name__)

#: Handlers and worker settings by job source ("scp", "orthanc"), built in each process.
HandlerFactory = Callable[[CeleryJobQueue], Mapping[str, tuple[Handler, WorkerSettings]]]

#: Wait before requeueing a message after Redis failed us (no hot loop while it restarts).
REQUEUE_PAUSE_S = 2.0


@dataclass(slots=True)
class _Runtime:
    """What one worker process needs: its queue and one ``Worker`` per job source."""

    queue: CeleryJobQueue
    workers: dict[str, Worker]


def make_celery_app(config: CeleryConfig, factory: HandlerFactory | None = None) -> Celery:
    """The Celery app: Redis as broker and result store, the guarantees above configured.

    ``factory`` is needed only where jobs run (``run_celery_worker``); a
    producer that just sends messages passes none.
    """
    app = Celery("ctnode", broker=config.broker_url, backend=config.broker_url,
                 set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=config.prefetch_multiplier,
        task_default_queue=config.default_queue,
        task_create_missing_queues=True,
        broker_transport_options={
            "visibility_timeout": config.visibility_timeout,
            "unacked_restore_interval": config.restore_interval,
            "unacked_restore_throttle": 1,
            "socket_timeout": config.redis_timeout,
            "socket_connect_timeout": config.redis_timeout,
        },
        result_backend_transport_options={"socket_timeout": config.redis_timeout},
        result_expires=config.result_expires,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # keep trying while Redis restarts
        worker_cancel_long_running_tasks_on_connection_loss=False,  # the lease guards
        task_track_started=True,
        worker_send_task_events=True,  # Flower and `celery events` see each task
        task_send_sent_event=True,
        worker_hijack_root_logger=False,  # ctnode.logging_setup configures logging
        worker_redirect_stdouts=False,  # its handler writes to stderr: no loop through it
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
    )
    app.ctnode_config = config
    app.ctnode_factory = factory
    app.ctnode_runtimes = {}
    app.task(name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True)(_run_job)
    return app


def _runtime(app: Celery) -> _Runtime:
    """This process's runtime, built on first use (after the pool forked it)."""
    runtimes: dict[int, _Runtime] = app.ctnode_runtimes
    pid = os.getpid()
    runtime = runtimes.get(pid)
    if runtime is None:
        factory: HandlerFactory | None = app.ctnode_factory
        if factory is None:
            raise RuntimeError("this Celery app was made without handlers: it cannot run jobs")
        queue = CeleryJobQueue(app.ctnode_config, app=app)
        workers = {source: Worker(queue, handler, settings, name=default_worker_name())
                   for source, (handler, settings) in factory(queue).items()}
        runtime = runtimes[pid] = _Runtime(queue, workers)
    return runtime


def _run_job(task: Any, job_id: int) -> str:
    """Take job ``job_id`` and run it; returns what became of it (shown by Flower)."""
    try:
        return _take_and_run(task, int(job_id))
    except (Retry, Reject):
        raise
    except redis.RedisError as exc:
        # The record could not be read or written: give the message back, do not drop it.
        logger.warning("job %s: Redis error (%s); message requeued", job_id, exc)
        time.sleep(REQUEUE_PAUSE_S)
        raise Reject(str(exc), requeue=True) from exc
    except Exception as exc:
        # Not the study's fault (handler errors are recorded by the Worker): the worker's
        # own set-up failed. Acknowledging would leave the job queued with no message.
        logger.exception("job %s: worker error; message requeued", job_id)
        time.sleep(REQUEUE_PAUSE_S)
        raise Reject(str(exc), requeue=True) from exc


def _take_and_run(task: Any, job_id: int) -> str:
    runtime = _runtime(task.app)
    job = runtime.queue.get(job_id)
    if job is None:
        logger.warning("job %d: no record (message for a removed job); dropped", job_id)
        return TakeKind.MISSING.value
    worker = runtime.workers.get(job.source)
    if worker is None:
        if job.state.is_final:
            return TakeKind.FINAL.value
        reason = f"no handler for jobs from {job.source!r} in this worker"
        runtime.queue.mark(job_id, JobState.FAILED, reason)
        return JobState.FAILED.value
    s = worker.settings
    verdict = runtime.queue.take(job_id, worker.name, s.lease_seconds, s.max_attempts,
                                 owner_dead=process_is_gone)
    if verdict.holds and verdict.job is not None:
        after = worker.process(verdict.job)
        return after.state.value if after is not None else TakeKind.MISSING.value
    if verdict.kind in (TakeKind.BUSY, TakeKind.NOT_DUE):
        # Running elsewhere, or waiting for its retry time: look again then.
        wait = min(verdict.wait_seconds + 0.5, runtime.queue.max_countdown())
        raise task.retry(countdown=wait, max_retries=None)
    return verdict.kind.value


def _republish_on_start(sender: Any = None, **_: Any) -> None:
    """On worker start: send messages a dead producer left unsent (see CeleryJobQueue)."""
    app = getattr(sender, "app", None)
    if app is None or getattr(app, "ctnode_factory", None) is None:
        return
    logger.info("Celery worker %s ready", getattr(sender, "hostname", "?"))
    queue = CeleryJobQueue(app.ctnode_config, app=app)
    try:
        sent = queue.republish_unsent()
    except redis.RedisError as exc:
        logger.warning("could not look for unsent jobs: %s", exc)
        return
    if sent:
        logger.warning("%d job(s) had no message; sent them", sent)


signals.worker_ready.connect(_republish_on_start, weak=False)


def run_celery_worker(
    app: Celery,
    queues: Sequence[str],
    concurrency: int,
    *,
    hostname: str | None = None,
    loglevel: str = "INFO",
    warm_up: Callable[[], None] | None = None,
) -> None:
    """Run a Celery worker (prefork, ``concurrency`` processes) until SIGTERM or SIGINT.

    SIGTERM is Celery's warm shutdown: running studies finish, reserved
    messages go back to Redis. ``warm_up`` runs before the pool forks (import
    the pipeline once, shared copy-on-write by the processes).
    """
    if not queues:
        raise ValueError("a worker must serve at least one queue")
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if getattr(app, "ctnode_factory", None) is None:
        raise ValueError("the Celery app has no handlers (make_celery_app(config, factory))")
    if warm_up is not None:
        warm_up()
    argv = ["worker", f"--loglevel={loglevel}", f"--queues={','.join(queues)}",
            f"--concurrency={concurrency}", "--pool=prefork", "--optimization=fair",
            "--task-events", "--without-mingle", "--without-gossip"]
    if hostname:
        argv.append(f"--hostname={hostname}")
    logger.info("Celery worker: queues %s, %d process(es), prefetch %d", ", ".join(queues),
                concurrency, app.conf.worker_prefetch_multiplier)
    app.worker_main(argv=argv)
