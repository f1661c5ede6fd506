"""Persistent job queue shared by every asynchronous door (scp_node, orthanc_plugin).

Two back ends behind ``JobQueue``: SQLite (embedded default) and Celery with
Redis (``jobs.celery_queue``, ``jobs.celery_app``; scaled out). This package
and the SQLite back end are standard library only: the Orthanc plugin runs in
Orthanc's embedded Python, outside the project's virtualenv, and imports it to
enqueue. The Celery modules are imported only by ``make_queue`` when chosen.
"""

from jobs.errors import (
    JobError,
    JobNotFoundError,
    JobStateError,
    LeaseLostError,
    PermanentJobError,
    RetryableJobError,
)
from jobs.factory import DEFAULT_QUEUE_FILE, celery_config, default_queue_path, make_queue
from jobs.forward import ForwardHandler
from jobs.queue import JobQueue
from jobs.sqlite_queue import SqliteJobQueue
from jobs.types import (
    CeleryConfig,
    Job,
    JobContext,
    JobOutcome,
    JobState,
    TakeKind,
    TakeVerdict,
    WorkerSettings,
)
from jobs.worker import (
    Handler,
    Worker,
    WorkerPool,
    default_worker_name,
    process_is_gone,
    run_worker,
)

__all__ = [
    "DEFAULT_QUEUE_FILE",
    "CeleryConfig",
    "ForwardHandler",
    "Handler",
    "Job",
    "JobContext",
    "JobError",
    "JobNotFoundError",
    "JobOutcome",
    "JobQueue",
    "JobState",
    "JobStateError",
    "LeaseLostError",
    "PermanentJobError",
    "RetryableJobError",
    "SqliteJobQueue",
    "TakeKind",
    "TakeVerdict",
    "Worker",
    "WorkerPool",
    "WorkerSettings",
    "celery_config",
    "default_queue_path",
    "default_worker_name",
    "make_queue",
    "process_is_gone",
    "run_worker",
]
