"""Pick the job-queue back end from the settings: the one place doors get their queue from.

``make_queue(settings)`` returns the SQLite queue of this node
(``<node.work_dir>/jobs.sqlite3``) or, with ``jobs.backend = "celery"``, the
Celery queue on Redis. The Celery modules are imported only then, so the
embedded node (and the Orthanc plugin, standard library only) never needs them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from jobs.queue import JobQueue
from jobs.sqlite_queue import SqliteJobQueue
from jobs.types import CeleryConfig

if TYPE_CHECKING:
    from ctnode.settings import Settings

DEFAULT_QUEUE_FILE = "jobs.sqlite3"


def default_queue_path(work_dir: Path) -> Path:
    """Where every door of one node keeps its shared queue: ``<work_dir>/jobs.sqlite3``."""
    return Path(work_dir) / DEFAULT_QUEUE_FILE


def celery_config(settings: Settings) -> CeleryConfig:
    """The Celery back end's plain settings; new jobs go to the GPU queue when a model needs it.

    Routing is per study: every enabled model runs on the worker that takes
    it, so a study goes where its most demanding model can run.
    """
    j = settings.jobs
    needs_gpu = bool(set(j.gpu_models) & set(settings.inference.enabled_models))
    queues = tuple(dict.fromkeys([j.cpu_queue, j.gpu_queue, *j.worker_queues]))
    return CeleryConfig(
        broker_url=j.broker_url.get_secret_value(),
        key_prefix=j.key_prefix,
        default_queue=j.gpu_queue if needs_gpu else j.cpu_queue,
        queues=queues,
        prefetch_multiplier=j.prefetch_multiplier,
        visibility_timeout=j.visibility_timeout_s,
        restore_interval=j.restore_interval_s,
        redis_timeout=j.redis_timeout_s,
        result_expires=j.result_expires_s,
    )


def make_queue(settings: Settings, sqlite_path: Path | None = None) -> JobQueue:
    """The node's job queue as the settings choose (``sqlite_path`` overrides the file)."""
    if settings.jobs.backend == "celery":
        from jobs.celery_queue import CeleryJobQueue

        return CeleryJobQueue(celery_config(settings))
    return SqliteJobQueue(sqlite_path or default_queue_path(settings.node.work_dir))
