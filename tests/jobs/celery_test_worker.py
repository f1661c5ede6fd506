"""A Celery worker for the fault tests: the real ``jobs.celery_app`` with a scripted handler.

Run as ``python -m tests.jobs.celery_test_worker --broker URL --log FILE ...``.
The job's locator says what the handler does, so a test scripts each study:

* ``sleep:S``  works S seconds, then done;
* ``flaky:K``  fails transiently on its first K attempts, then done;
* ``poison``   fails transiently on every attempt;
* ``crash``    kills its own worker process (SIGKILL) on every attempt.

Each start and end is appended to the log file as one JSON line (job id,
attempt, worker name, pid, time), which the tests read back.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import time
from pathlib import Path

from jobs import Job, JobContext, JobOutcome, JobState, RetryableJobError, WorkerSettings
from jobs.celery_app import make_celery_app, run_celery_worker
from jobs.types import CeleryConfig


class ScriptedHandler:
    """Does what the job's locator says; logs every start and end."""

    def __init__(self, log: Path) -> None:
        self.log = log

    def _note(self, event: str, job: Job, ctx: JobContext) -> None:
        line = json.dumps({"event": event, "job": job.id, "attempt": job.attempts,
                           "worker": ctx.worker, "pid": os.getpid(), "t": time.time()})
        with self.log.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def __call__(self, job: Job, ctx: JobContext) -> JobOutcome:
        self._note("start", job, ctx)
        kind, _, arg = job.locator.partition(":")
        if kind == "sleep":
            time.sleep(float(arg))
        elif kind == "flaky" and job.attempts <= int(arg):
            raise RetryableJobError(f"destination down (attempt {job.attempts})")
        elif kind == "poison":
            raise RetryableJobError("this study breaks the analysis every time")
        elif kind == "crash":
            os.kill(os.getpid(), signal.SIGKILL)
        self._note("end", job, ctx)
        return JobOutcome(JobState.DONE, f"{kind} done")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--broker", required=True)
    p.add_argument("--prefix", default="t")
    p.add_argument("--queues", default="t.cpu")
    p.add_argument("--log", type=Path, required=True)
    p.add_argument("--lease", type=float, default=3.0)
    p.add_argument("--max-attempts", type=int, default=3)
    p.add_argument("--backoff", type=float, default=0.3)
    p.add_argument("--visibility", type=float, default=4.0)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--prefetch", type=int, default=1)
    p.add_argument("--hostname", default=None)
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(message)s")
    queues = tuple(a.queues.split(","))
    config = CeleryConfig(broker_url=a.broker, key_prefix=a.prefix, default_queue=queues[0],
                          queues=queues, visibility_timeout=a.visibility, restore_interval=1.0,
                          prefetch_multiplier=a.prefetch,
                          redis_timeout=5.0)
    settings = WorkerSettings(lease_seconds=a.lease, max_attempts=a.max_attempts,
                              backoff_seconds=a.backoff, backoff_max_seconds=a.backoff * 4)
    handler = ScriptedHandler(a.log)
    app = make_celery_app(config, lambda queue: {"scp": (handler, settings)})
    run_celery_worker(app, queues, a.concurrency, hostname=a.hostname, loglevel="INFO")


if __name__ == "__main__":
    main()
