"""The generic worker: claim a job, hold its lease, run a door's handler, record the outcome.

Doors differ only in their handler (``handler(job, context) -> JobOutcome``):
the SCP handler reads a spool folder, the Orthanc handler reads from Orthanc.
Everything about leases, attempts and backoff lives here, once.

A handler signals a transient failure with ``RetryableJobError`` (the job goes
back to the queue after a backoff, up to ``max_attempts`` tries) and a
hopeless one with ``PermanentJobError``; any other exception is logged with
its traceback and treated as transient. Standard library only.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from jobs.context import current_job_id
from jobs.errors import LeaseLostError, PermanentJobError, RetryableJobError
from jobs.queue import JobQueue
from jobs.types import Job, JobContext, JobOutcome, JobState, WorkerSettings

logger = logging.getLogger(__name__)


Handler = Callable[[Job, JobContext], JobOutcome]

_worker_numbers = itertools.count()


def default_worker_name(index: int | None = None) -> str:
    """host:pid:index, readable in ``ctnode jobs``; without ``index``, the next free number.

    The queue tells workers apart by name alone (renew, mark), so two workers of
    one process must never share one: both could then record the same job.
    """
    if index is None:
        index = next(_worker_numbers)
    return f"{socket.gethostname()}:{os.getpid()}:{index}"


def process_is_gone(worker_name: str) -> bool:
    """True when ``worker_name`` (host:pid:index) names a process of this host that has ended.

    Lets a job whose worker process was killed (SIGKILL, out of memory) be
    taken over at once instead of when its lease runs out. Another host's
    workers are never judged: only their lease tells.
    """
    host, _, rest = worker_name.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False


class Worker:
    """One worker: a loop that processes jobs one at a time until ``stop`` is set."""

    def __init__(
        self,
        queue: JobQueue,
        handler: Handler,
        settings: WorkerSettings,
        name: str | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        if not isinstance(settings, WorkerSettings):
            raise TypeError("Worker.settings must be a WorkerSettings")
        self.queue = queue
        self.handler = handler
        self.settings = settings
        self.name = name or default_worker_name()
        self.stop = stop or threading.Event()

    def run(self) -> None:
        """Process jobs until ``stop`` is set; an empty queue is polled."""
        logger.info("worker %s started", self.name)
        while not self.stop.is_set():
            try:
                job = self.run_once()
            except Exception:  # the queue itself failed (disk, lock timeout): keep going
                logger.exception("worker %s: queue error; retrying after a pause", self.name)
                job = None
            if job is None:
                self.stop.wait(self.settings.poll_seconds)
        logger.info("worker %s stopped", self.name)

    def run_once(self) -> Job | None:
        """Claim and process one job; returns the job as recorded after, or None if idle."""
        s = self.settings
        job = self.queue.claim(
            self.name, s.lease_seconds, sources=s.sources or None, max_attempts=s.max_attempts
        )
        if job is None:
            return None
        return self._process(job)

    def process(self, job: Job) -> Job | None:
        """Run the handler on a job this worker already holds, renewing its lease meanwhile.

        Returns the job as recorded after (None if it vanished). Handler errors
        become retries or failures; queue errors (Redis or disk down) propagate.
        """
        return self._process(job)

    def _process(self, job: Job) -> Job | None:
        ctx = JobContext(worker=self.name, lease_lost=threading.Event(), stop=self.stop)
        finished = threading.Event()
        renewer = threading.Thread(
            target=self._renew_until, args=(job, ctx, finished),
            name=f"lease-{job.id}", daemon=True,
        )
        renewer.start()
        try:
            return self._record(job, ctx)
        finally:
            finished.set()
            renewer.join()

    def _renew_until(self, job: Job, ctx: JobContext, finished: threading.Event) -> None:
        lease = self.settings.lease_seconds
        lease_until = job.lease_until
        while not finished.wait(lease / 3.0):
            asked_at = time.time()
            try:
                owned = self.queue.renew(job.id, self.name, lease)
            except Exception:
                if time.time() < lease_until:
                    logger.exception("job %d: lease renewal failed; will try again", job.id)
                    continue
                # Expired unrenewed: another worker may take the job now; tell the handler.
                logger.exception("job %d: lease expired while renewals failed", job.id)
                owned = False
            if not owned:
                logger.warning("job %d: lease lost by %s", job.id, self.name)
                ctx.lease_lost.set()
                return
            lease_until = asked_at + lease

    def _record(self, job: Job, ctx: JobContext) -> Job | None:
        token = current_job_id.set(str(job.id))
        try:
            return self._run_handler(job, ctx)
        finally:
            current_job_id.reset(token)

    def _run_handler(self, job: Job, ctx: JobContext) -> Job | None:
        try:
            try:
                outcome = self.handler(job, ctx)
            except PermanentJobError as exc:
                return self.queue.mark(job.id, JobState.FAILED, str(exc), worker=self.name)
            except RetryableJobError as exc:
                return self._retry_later(job, str(exc))
            except Exception as exc:
                logger.exception("job %d: handler raised", job.id)
                return self._retry_later(job, f"{type(exc).__name__}: {exc}")
            if not isinstance(outcome, JobOutcome):
                # A bug in the handler, not in the job: record it rather than leave the
                # job running until its lease expires and blame a dead worker.
                logger.error("job %d: handler returned %s, not JobOutcome", job.id,
                             type(outcome).__name__)
                return self.queue.mark(
                    job.id, JobState.FAILED,
                    f"handler returned {type(outcome).__name__}, not JobOutcome",
                    worker=self.name,
                )
            return self.queue.mark(
                job.id, outcome.state, outcome.reason, outcome.result_json, worker=self.name
            )
        except LeaseLostError as exc:
            logger.warning("job %d: outcome not recorded: %s", job.id, exc)
            return self.queue.get(job.id)

    def _retry_later(self, job: Job, reason: str) -> Job:
        if job.attempts >= self.settings.max_attempts:
            return self.queue.mark(
                job.id, JobState.FAILED,
                f"gave up after {job.attempts} attempts: {reason}", worker=self.name,
            )
        delay = self.settings.backoff(job.attempts)
        return self.queue.defer(
            job.id, f"attempt {job.attempts} failed: {reason}", delay, worker=self.name
        )


def run_worker(
    queue: JobQueue,
    handler: Handler,
    settings: WorkerSettings,
    stop_event: threading.Event,
    name: str | None = None,
) -> None:
    """Run one worker in the calling thread until ``stop_event`` is set."""
    Worker(queue, handler, settings, name=name, stop=stop_event).run()


class WorkerPool:
    """``size`` workers in threads of this process, stopped together."""

    def __init__(
        self, queue: JobQueue, handler: Handler, settings: WorkerSettings, size: int = 1
    ) -> None:
        if size < 1:
            raise ValueError("WorkerPool.size must be at least 1")
        self.stop_event = threading.Event()
        self.workers = [
            Worker(queue, handler, settings, name=default_worker_name(), stop=self.stop_event)
            for _ in range(size)
        ]
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start every worker thread (none on a push-based queue: its broker's workers run jobs)."""
        if self._threads:
            raise RuntimeError("WorkerPool already started")
        if self.workers and self.workers[0].queue.push_based:
            logger.info("jobs are run by the queue's own workers (`ctnode worker`); "
                        "no worker thread started here")
            return
        for worker in self.workers:
            thread = threading.Thread(target=worker.run, name=worker.name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        """Ask workers to stop and wait; a job still running keeps its lease until it expires."""
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout)
            if thread.is_alive():
                logger.warning("worker %s still busy at shutdown", thread.name)
        self._threads = []
