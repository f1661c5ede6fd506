"""The scaled-out job queue: job records in Redis, one Celery message per pending run.

``CeleryJobQueue`` keeps the ``JobQueue`` contract of the SQLite queue, so a
door enqueues the same way in both back ends. What differs is who runs the
jobs: Celery pushes each message to a worker (``jobs.celery_app``), so nothing
here polls (``claim`` finds nothing; ``push_based`` tells ``WorkerPool`` to
start no threads).

A message is sent after its record is written. A producer that dies in
between leaves a queued job with ``published = 0``: enqueueing it again more
than ``unsent_grace_s`` later sends it (a concurrent duplicate enqueue, while
the first producer is still sending, does not), and every worker re-sends such
jobs when it starts (``republish_unsent``). Duplicate messages are harmless: a worker takes a job
only through ``take``, which lets one run at a time and drops messages for
finished jobs.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from jobs.queue import JobQueue, check_identity
from jobs.redis_store import RedisJobStore
from jobs.types import CeleryConfig, Job, JobState, TakeVerdict

if TYPE_CHECKING:
    from celery import Celery

logger = logging.getLogger(__name__)

TASK_NAME = "ctnode.jobs.run"

#: kombu's Redis transport keeps messages of priority 3/6/9 in sibling lists (priority_steps).
_PRIORITY_SEP = "\x06\x16"
_PRIORITY_STEPS = ("3", "6", "9")
#: kombu's hash of messages delivered to a worker and not yet acknowledged.
_UNACKED_KEY = "unacked"


def redis_client(config: CeleryConfig) -> redis.Redis:
    """A client for job records that rides out a Redis restart (retries with backoff)."""
    return redis.Redis.from_url(
        config.broker_url, decode_responses=True,
        socket_timeout=config.redis_timeout, socket_connect_timeout=config.redis_timeout,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), 6),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        health_check_interval=30,
    )


class CeleryJobQueue(JobQueue):
    """``JobQueue`` on Redis records plus Celery messages (see the module docstring)."""

    push_based = True
    #: A queued job still unsent this long after its last change lost its producer.
    unsent_grace_s = 30.0

    def __init__(self, config: CeleryConfig, app: Celery | None = None,
                 client: redis.Redis | None = None) -> None:
        if not isinstance(config, CeleryConfig):
            raise TypeError("CeleryJobQueue.config must be a CeleryConfig")
        self.config = config
        self.client = client or redis_client(config)
        self.store = RedisJobStore(self.client, config.key_prefix)
        self._app = app

    @property
    def app(self) -> Celery:
        """The Celery app that sends messages (built on first use: producers need no worker)."""
        if self._app is None:
            from jobs.celery_app import make_celery_app

            self._app = make_celery_app(self.config)
        return self._app

    # -- messages -----------------------------------------------------------------------

    def max_countdown(self) -> float:
        """Longest wait a message may carry: half the visibility timeout.

        A worker holds a message that is due later unacknowledged; Redis would
        hand out a copy of one held past the visibility timeout, and each copy
        again. A longer wait is split: the message comes back early, finds the
        job not due (``TakeKind.NOT_DUE``) and waits again.
        """
        return self.config.visibility_timeout / 2.0

    def publish(self, job: Job, countdown: float = 0.0) -> None:
        """Send "run job N" to the job's queue, due in ``countdown`` seconds (capped)."""
        countdown = min(countdown, self.max_countdown())
        self.app.send_task(
            TASK_NAME, args=[job.id], queue=job.queue or self.config.default_queue,
            countdown=countdown if countdown > 0 else None,
        )
        self.store.set_published(job.id)

    def republish_unsent(self, min_age_seconds: float | None = None) -> int:
        """Send the messages of queued jobs whose producer died before sending them."""
        grace = self.unsent_grace_s if min_age_seconds is None else min_age_seconds
        jobs = self.store.unpublished(grace)
        for job in jobs:
            logger.warning("job %d: its message was never sent; sending it now", job.id)
            self.publish(job, countdown=max(0.0, job.not_before - self.store.now()))
        return len(jobs)

    def queue_lengths(self) -> dict[str, int]:
        """Messages waiting in each known Celery queue (not yet given to a worker)."""
        pipe = self.client.pipeline(transaction=False)
        for name in self.config.queues:
            pipe.llen(name)
            for step in _PRIORITY_STEPS:
                pipe.llen(f"{name}{_PRIORITY_SEP}{step}")
        lengths = pipe.execute()
        per_queue = 1 + len(_PRIORITY_STEPS)
        return {name: int(sum(lengths[i * per_queue:(i + 1) * per_queue]))
                for i, name in enumerate(self.config.queues)}

    def unacked(self) -> int:
        """Messages held by workers and not yet acknowledged (running or waiting to retry)."""
        return int(self.client.hlen(_UNACKED_KEY))

    # -- JobQueue -----------------------------------------------------------------------

    def enqueue(
        self, study_uid: str, source: str, locator: str, content_hash: str, n_instances: int = 0
    ) -> tuple[Job, bool]:
        check_identity(study_uid, source, content_hash)
        job, created = self.store.create(study_uid, source, locator, content_hash,
                                         n_instances, self.config.default_queue)
        if created:
            logger.info("job %d queued on %s: study %s from %s (%d instances)",
                        job.id, job.queue, study_uid, source, n_instances)
            self.publish(job)
        elif (job.state is JobState.QUEUED and not self.store.is_published(job.id)
              and self.store.now() - job.updated_at >= self.unsent_grace_s):
            logger.warning("job %d: queued earlier but its message was not sent; sending it",
                           job.id)
            self.publish(job, countdown=max(0.0, job.not_before - self.store.now()))
        else:
            logger.info("job %d already exists for study %s with this content (%s)",
                        job.id, study_uid, job.state.value)
        return job, created

    def claim(
        self,
        worker: str,
        lease_seconds: float,
        sources: Collection[str] | None = None,
        max_attempts: int | None = None,
    ) -> Job | None:
        """Always None: Celery pushes jobs to its workers (``take``), nobody polls."""
        return None

    def take(
        self, job_id: int, worker: str, lease_seconds: float, max_attempts: int,
        owner_dead: Callable[[str], bool] = lambda name: False,
    ) -> TakeVerdict:
        """Hold the job a message named (``RedisJobStore.take``)."""
        return self.store.take(job_id, worker, lease_seconds, max_attempts, owner_dead)

    def renew(self, job_id: int, worker: str, lease_seconds: float) -> bool:
        return self.store.renew(job_id, worker, lease_seconds)

    def mark(
        self,
        job_id: int,
        state: JobState,
        reason: str = "",
        result_json: str = "",
        worker: str | None = None,
    ) -> Job:
        return self.store.mark(job_id, state, reason, result_json, worker)

    def defer(
        self, job_id: int, reason: str, delay_seconds: float, worker: str | None = None
    ) -> Job:
        job = self.store.defer(job_id, reason, delay_seconds, worker)
        self.publish(job, countdown=delay_seconds)
        return job

    def retry(self, job_id: int) -> Job:
        job = self.store.retry(job_id)
        self.publish(job)
        return job

    def get(self, job_id: int) -> Job | None:
        return self.store.get(job_id)

    def list(self, state: JobState | None = None, limit: int = 100) -> builtins.list[Job]:
        return self.store.list(state, limit)

    def counts(self) -> dict[str, int]:
        return self.store.counts()

    def find(self, study_uid: str) -> builtins.list[Job]:
        return self.store.find(study_uid)

    def close(self) -> None:
        """Release Redis connections (the Celery app's producer pool too)."""
        self.client.close()
        if self._app is not None:
            self._app.close()
