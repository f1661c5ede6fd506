"""Job records in Redis: what the Celery backend knows about each job besides its message.

Celery carries one message per pending run ("run job 17"); the job itself
(study, state, attempts, lease, reason, result) is a Redis hash here, with
sorted-set indexes by state, by study and overall, so every door, every
worker and the operator's views read the same truth the SQLite queue keeps
in its one table. The state machine is the SQLite queue's (``jobs.queue``):

* ``(study_uid, content_hash)`` identifies a job: enqueueing it again returns
  the existing one (a hash field maps the pair to the job id);
* a job is held by one worker at a time through a lease that its worker
  renews; a job whose lease expired, or whose worker process is known to be
  dead, may be taken over; after ``max_attempts`` such losses it is failed
  with the reason, not run again (a study that kills its worker);
* ``mark``/``defer`` with a worker name succeed only while that worker still
  holds the job (else ``LeaseLostError``).

Every change is one WATCH/MULTI transaction on the job's hash, so two
workers taking the same job at once cannot both win; times come from the
Redis server's clock, so leases mean the same on every machine.
"""

from __future__ import annotations

import builtins
import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

import redis

from jobs.errors import JobNotFoundError, JobStateError, LeaseLostError
from jobs.types import Job, JobState, TakeKind, TakeVerdict

logger = logging.getLogger(__name__)

#: A due time this close to now counts as due (clock rounding between calls).
_DUE_SLACK_S = 0.05

_NUMBERS = {"id": int, "attempts": int, "n_instances": int, "created_at": float,
            "updated_at": float, "not_before": float, "lease_until": float}


def _to_job(data: Mapping[str, str]) -> Job:
    values: dict[str, Any] = {}
    for field in dataclasses.fields(Job):
        raw = data.get(field.name)
        if raw is None:
            continue
        if field.name == "state":
            values["state"] = JobState(raw)
        elif field.name in _NUMBERS:
            values[field.name] = _NUMBERS[field.name](raw)
        else:
            values[field.name] = raw
    return Job(**values)


def _to_hash(job: Job) -> dict[str, str]:
    out = {}
    for field in dataclasses.fields(Job):
        value = getattr(job, field.name)
        out[field.name] = value.value if isinstance(value, JobState) else str(value)
    return out


class RedisJobStore:
    """Job records under ``<prefix>:`` in one Redis database (not Redis Cluster)."""

    def __init__(self, client: redis.Redis, prefix: str = "ctnode") -> None:
        if not prefix:
            raise ValueError("RedisJobStore.prefix must not be empty")
        # Any: redis-py types every reply as sync-or-async; with decode_responses they are str.
        self.client: Any = client
        self.prefix = prefix

    # -- keys ---------------------------------------------------------------------------

    def _key(self, *parts: object) -> str:
        return ":".join([self.prefix, *map(str, parts)])

    def _job_key(self, job_id: int) -> str:
        return self._key("job", job_id)

    def now(self) -> float:
        """The Redis server's clock (epoch seconds): one clock for every machine."""
        seconds, micros = self.client.time()
        return float(seconds) + micros / 1e6

    # -- writes -------------------------------------------------------------------------

    def create(
        self, study_uid: str, source: str, locator: str, content_hash: str,
        n_instances: int, queue: str,
    ) -> tuple[Job, bool]:
        """Add a queued job unless (study_uid, content_hash) has one; returns (job, created)."""
        ident = self._key("ident")
        field = f"{study_uid}\x1f{content_hash}"
        existing = self.client.hget(ident, field)
        if existing is None:
            new_id = int(self.client.incr(self._key("seq")))  # a duplicate race leaves a gap
            now = self.now()
            job = Job(id=new_id, study_uid=study_uid, source=source, locator=locator,
                      content_hash=content_hash, state=JobState.QUEUED, attempts=0,
                      created_at=now, updated_at=now, n_instances=int(n_instances),
                      queue=queue)

            def tx(pipe: Any) -> tuple[int, bool]:
                found = pipe.hget(ident, field)
                if found is not None:
                    return int(found), False
                pipe.multi()
                pipe.hset(ident, field, new_id)
                pipe.hset(self._job_key(new_id), mapping={**_to_hash(job), "published": "0"})
                pipe.zadd(self._key("all"), {new_id: new_id})
                pipe.zadd(self._key("state", JobState.QUEUED.value), {new_id: new_id})
                pipe.zadd(self._key("study", study_uid), {new_id: new_id})
                return new_id, True

            job_id, created = self.client.transaction(tx, ident, value_from_callable=True)
        else:
            job_id, created = int(existing), False
        stored = self.get(job_id)
        if stored is None:
            raise JobNotFoundError(f"job {job_id} of study {study_uid} has no record")
        return stored, created

    def _save(self, pipe: Any, before: Job, after: Job, **extra: str) -> None:
        """Write ``after`` over ``before`` (inside MULTI), moving the state index."""
        pipe.hset(self._job_key(after.id), mapping={**_to_hash(after), **extra})
        if before.state is not after.state:
            pipe.zrem(self._key("state", before.state.value), after.id)
            pipe.zadd(self._key("state", after.state.value), {after.id: after.id})

    def _change(self, job_id: int, change: Callable[[Any, Job, float], Any]) -> Any:
        """Run ``change(pipe, job, now)`` in a transaction watching the job's hash."""
        key = self._job_key(job_id)
        now = self.now()

        def tx(pipe: Any) -> Any:
            data = pipe.hgetall(key)
            if not data:
                raise JobNotFoundError(f"no job with id {job_id}")
            return change(pipe, _to_job(data), now)

        return self.client.transaction(tx, key, value_from_callable=True)

    def take(
        self, job_id: int, worker: str, lease_seconds: float, max_attempts: int,
        owner_dead: Callable[[str], bool] = lambda name: False,
    ) -> TakeVerdict:
        """Hold the job a message named, if it may run now; else say why and when to look again.

        The take counts as an attempt. ``owner_dead(worker_name)`` lets the
        caller declare a holder dead before its lease runs out (a process of
        this machine that no longer exists).
        """
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")

        def change(pipe: Any, job: Job, now: float) -> TakeVerdict:
            if job.state.is_final:
                return TakeVerdict(TakeKind.FINAL, job)
            if job.state is JobState.QUEUED:
                if job.not_before > now + _DUE_SLACK_S:
                    return TakeVerdict(TakeKind.NOT_DUE, job, job.not_before - now)
                kind = TakeKind.CLAIMED
            else:
                if job.lease_until >= now and not owner_dead(job.worker):
                    return TakeVerdict(TakeKind.BUSY, job, job.lease_until - now)
                if job.attempts >= max_attempts:
                    failed = dataclasses.replace(
                        job, state=JobState.FAILED, updated_at=now, lease_until=0.0,
                        reason=f"gave up: its worker stopped during each of {job.attempts} "
                               f"attempts (last: {job.worker})")
                    pipe.multi()
                    self._save(pipe, job, failed)
                    return TakeVerdict(TakeKind.GAVE_UP, failed)
                kind = TakeKind.TAKEN_OVER
            held = dataclasses.replace(
                job, state=JobState.RUNNING, worker=worker, lease_until=now + lease_seconds,
                attempts=job.attempts + 1, updated_at=now)
            pipe.multi()
            self._save(pipe, job, held)
            return TakeVerdict(kind, held)

        try:
            verdict: TakeVerdict = self._change(job_id, change)
        except JobNotFoundError:
            return TakeVerdict(TakeKind.MISSING)
        job = verdict.job
        if verdict.kind is TakeKind.TAKEN_OVER and job is not None:
            logger.warning("job %d taken over by %s: its worker stopped (attempt %d)",
                           job_id, worker, job.attempts)
        elif verdict.kind is TakeKind.CLAIMED and job is not None:
            logger.info("job %d claimed by %s (attempt %d)", job_id, worker, job.attempts)
        elif verdict.kind is TakeKind.GAVE_UP and job is not None:
            logger.error("job %d failed: %s", job_id, job.reason)
        return verdict

    def renew(self, job_id: int, worker: str, lease_seconds: float) -> bool:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")

        def change(pipe: Any, job: Job, now: float) -> bool:
            if job.state is not JobState.RUNNING or job.worker != worker:
                return False
            pipe.multi()
            pipe.hset(self._job_key(job_id), "lease_until", str(now + lease_seconds))
            return True

        try:
            return bool(self._change(job_id, change))
        except JobNotFoundError:
            return False

    @staticmethod
    def _check_owner(job: Job, worker: str | None) -> None:
        if worker is not None and (job.state is not JobState.RUNNING or job.worker != worker):
            raise LeaseLostError(
                f"job {job.id} is no longer held by {worker} "
                f"(state {job.state.value}, worker {job.worker or '-'})")

    def mark(self, job_id: int, state: JobState, reason: str = "", result_json: str = "",
             worker: str | None = None) -> Job:
        state = JobState(state)

        def change(pipe: Any, job: Job, now: float) -> Job:
            self._check_owner(job, worker)
            after = dataclasses.replace(job, state=state, reason=reason,
                                        result_json=result_json, updated_at=now,
                                        lease_until=0.0)
            pipe.multi()
            self._save(pipe, job, after)
            return after

        job: Job = self._change(job_id, change)
        logger.info("job %d %s: %s", job_id, state.value, reason or "-")
        return job

    def defer(self, job_id: int, reason: str, delay_seconds: float,
              worker: str | None = None) -> Job:
        """Back to queued, due ``delay_seconds`` from now; its new message is not sent yet."""
        if delay_seconds < 0:
            raise ValueError("delay_seconds must not be negative")

        def change(pipe: Any, job: Job, now: float) -> Job:
            self._check_owner(job, worker)
            after = dataclasses.replace(job, state=JobState.QUEUED, reason=reason,
                                        not_before=now + delay_seconds, updated_at=now,
                                        lease_until=0.0)
            pipe.multi()
            self._save(pipe, after=after, before=job, published="0")
            return after

        job: Job = self._change(job_id, change)
        logger.info("job %d back in queue for %.1f s: %s", job_id, delay_seconds, reason)
        return job

    def retry(self, job_id: int) -> Job:
        """An operator's retry: queued again with a fresh attempt count (not while it runs)."""

        def change(pipe: Any, job: Job, now: float) -> Job:
            if job.state is JobState.RUNNING and job.lease_until >= now:
                raise JobStateError(f"job {job_id} is running on {job.worker}; not retried")
            if job.state is JobState.QUEUED:
                raise JobStateError(f"job {job_id} is already queued")
            after = dataclasses.replace(
                job, state=JobState.QUEUED, attempts=0, not_before=0.0, lease_until=0.0,
                reason=f"retry requested (was {job.state.value}: {job.reason})",
                updated_at=now)
            pipe.multi()
            self._save(pipe, job, after, published="0")
            return after

        job: Job = self._change(job_id, change)
        logger.info("job %d queued again by request", job_id)
        return job

    def set_published(self, job_id: int) -> None:
        """Its message was handed to the broker (see ``unpublished``)."""
        self.client.hset(self._job_key(job_id), "published", "1")

    def is_published(self, job_id: int) -> bool:
        return self.client.hget(self._job_key(job_id), "published") == "1"

    # -- reads --------------------------------------------------------------------------

    def get(self, job_id: int) -> Job | None:
        data = self.client.hgetall(self._job_key(job_id))
        return _to_job(data) if data else None

    def _jobs(self, ids: builtins.list[str]) -> builtins.list[Job]:
        pipe = self.client.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(self._job_key(int(job_id)))
        return [_to_job(data) for data in pipe.execute() if data]

    def list(self, state: JobState | None = None, limit: int = 100) -> builtins.list[Job]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        index = self._key("all") if state is None else self._key("state", JobState(state).value)
        return self._jobs(self.client.zrevrange(index, 0, limit - 1))

    def counts(self) -> dict[str, int]:
        pipe = self.client.pipeline(transaction=False)
        for state in JobState:
            pipe.zcard(self._key("state", state.value))
        return {state.value: int(n) for state, n in zip(JobState, pipe.execute(), strict=True)}

    def find(self, study_uid: str) -> builtins.list[Job]:
        return self._jobs(self.client.zrevrange(self._key("study", study_uid), 0, -1))

    def unpublished(self, min_age_seconds: float) -> builtins.list[Job]:
        """Queued jobs whose message was never confirmed sent (a producer died in between)."""
        now = self.now()
        ids = self.client.zrange(self._key("state", JobState.QUEUED.value), 0, -1)
        pipe = self.client.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(self._job_key(int(job_id)), ["published", "updated_at"])
        stale = [job_id for job_id, (published, updated) in zip(ids, pipe.execute(), strict=True)
                 if published == "0" and updated and now - float(updated) >= min_age_seconds]
        return self._jobs(stale)
