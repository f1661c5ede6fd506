"""Persistent job queue shared by every asynchronous door (scp_node, orthanc_plugin).

Standard library only: the Orthanc plugin runs in Orthanc's embedded Python,
outside the project's virtualenv, and imports this package to enqueue.
"""

from pathlib import Path

from jobs.errors import (
    JobError,
    JobNotFoundError,
    JobStateError,
    LeaseLostError,
    PermanentJobError,
    RetryableJobError,
)
from jobs.queue import JobQueue
from jobs.sqlite_queue import SqliteJobQueue
from jobs.types import Job, JobContext, JobOutcome, JobState, WorkerSettings
from jobs.worker import Handler, Worker, WorkerPool, default_worker_name, run_worker

DEFAULT_QUEUE_FILE = "jobs.sqlite3"


def default_queue_path(work_dir: Path) -> Path:
    """Where every door of one node keeps its shared queue: ``<work_dir>/jobs.sqlite3``."""
    return Path(work_dir) / DEFAULT_QUEUE_FILE


__all__ = [
    "DEFAULT_QUEUE_FILE",
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
    "Worker",
    "WorkerPool",
    "WorkerSettings",
    "default_queue_path",
    "default_worker_name",
    "run_worker",
]
