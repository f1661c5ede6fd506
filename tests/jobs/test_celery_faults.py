"""The Celery back end's guarantees under faults, with real worker processes and redis-server.

Each test starts ``tests.jobs.celery_test_worker`` (the real ``jobs.celery_app``
with a scripted handler) as its own process group, and kills or stops it by
PID: a worker SIGKILLed mid-study, Redis killed between enqueue and pick-up,
studies that fail now and then or every time, a long study next to short
ones. Short leases and visibility timeouts keep the recovery within seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobs import CeleryConfig, JobState
from jobs.celery_queue import CeleryJobQueue
from tests.helpers import wait_for
from tests.jobs.redis_server import RedisServer

REPO = Path(__file__).resolve().parents[2]
QUEUE = "t.cpu"
LEASE_S = 3.0
VISIBILITY_S = 4.0


class Workers:
    """Worker processes of one test, each in its own process group; all ended at teardown."""

    def __init__(self, server: RedisServer, tmp: Path) -> None:
        self.server = server
        self.tmp = tmp
        self.log = tmp / "events.jsonl"
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, concurrency: int = 1, max_attempts: int = 3,
              ) -> subprocess.Popen[bytes]:
        out = (self.tmp / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.jobs.celery_test_worker", "--broker", self.server.url,
             "--log", str(self.log), "--queues", QUEUE, "--lease", str(LEASE_S),
             "--visibility", str(VISIBILITY_S), "--max-attempts", str(max_attempts),
             "--concurrency", str(concurrency), "--hostname", f"{name}@%h"],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        log = self.tmp / f"{name}.log"

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"worker {name} exited: {log.read_text()[-2000:]}")
            return " ready." in log.read_text(errors="replace")

        wait_for(ready, 60, f"worker {name} to be ready", every=0.1)
        return proc

    @staticmethod
    def kill(proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the whole worker (parent and pool processes): a machine lost mid-study."""
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # Celery's warm shutdown
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # pool processes left behind
            except ProcessLookupError:
                pass
            if proc.poll() is None:
                proc.wait(10)

    def events(self, job_id: int, event: str | None = None) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        lines = [json.loads(line) for line in self.log.read_text().splitlines() if line]
        return [e for e in lines if e["job"] == job_id and (event is None or e["event"] == event)]


@pytest.fixture()
def workers(redis_server: RedisServer, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(redis_server, tmp_path)
    try:
        yield w
    finally:
        w.stop_all()


@pytest.fixture()
def queue(redis_server: RedisServer) -> Iterator[CeleryJobQueue]:
    q = CeleryJobQueue(CeleryConfig(broker_url=redis_server.url, key_prefix="t",
                                    default_queue=QUEUE, queues=(QUEUE,)))
    try:
        yield q
    finally:
        q.close()


def wait_final(q: CeleryJobQueue, job_ids: list[int], timeout: float) -> None:
    def final() -> bool:
        return all((job := q.get(i)) is not None and job.state.is_final for i in job_ids)

    wait_for(final, timeout, f"jobs {job_ids} to finish", every=0.2)


def test_worker_killed_mid_study_is_redelivered_to_another_worker(
        workers: Workers, queue: CeleryJobQueue) -> None:
    first = workers.start("w1")
    job, _ = queue.enqueue("1.2.1", "scp", "sleep:5", "h1")
    wait_for(lambda: workers.events(job.id, "start"), 30, "the study to start on w1")
    workers.start("w2")
    workers.kill(first)  # mid-study: nothing acknowledged, nothing recorded
    assert queue.get(job.id).state is JobState.RUNNING  # type: ignore[union-attr]
    wait_final(queue, [job.id], 60)
    done = queue.get(job.id)
    assert done is not None and done.state is JobState.DONE and done.attempts == 2
    starts = workers.events(job.id, "start")
    ends = workers.events(job.id, "end")
    assert len(starts) == 2 and len(ends) == 1
    assert starts[0]["worker"] != starts[1]["worker"] == ends[0]["worker"] == done.worker
    assert starts[1]["pid"] != starts[0]["pid"]


def test_retries_back_off_and_poison_studies_fail_with_their_reason(
        workers: Workers, queue: CeleryJobQueue) -> None:
    workers.start("w1", concurrency=2, max_attempts=3)
    flaky, _ = queue.enqueue("1.3.1", "scp", "flaky:2", "h")
    poison, _ = queue.enqueue("1.3.2", "scp", "poison", "h")
    crash, _ = queue.enqueue("1.3.3", "scp", "crash", "h")
    wait_final(queue, [flaky.id, poison.id, crash.id], 90)

    done = queue.get(flaky.id)
    assert done is not None and done.state is JobState.DONE and done.attempts == 3
    times = [e["t"] for e in workers.events(flaky.id, "start")]
    assert len(times) == 3
    # backoff_seconds * 2**(attempts-1): 0.3 s after the first failure, 0.6 s after the second
    assert times[1] - times[0] >= 0.3 and times[2] - times[1] >= 0.6

    failed = queue.get(poison.id)
    assert failed is not None and failed.state is JobState.FAILED and failed.attempts == 3
    assert failed.reason == ("gave up after 3 attempts: this study breaks the analysis "
                             "every time")
    assert len(workers.events(poison.id, "start")) == 3

    killer = queue.get(crash.id)
    assert killer is not None and killer.state is JobState.FAILED
    assert killer.reason.startswith("gave up: its worker stopped during each of 3 attempts")
    assert len(workers.events(crash.id, "start")) == 3  # not a fourth time
    assert queue.counts()["running"] == 0 and queue.queue_lengths()[QUEUE] == 0


def test_no_job_lost_when_redis_restarts_between_enqueue_and_pickup(
        redis_server: RedisServer, workers: Workers, queue: CeleryJobQueue) -> None:
    jobs = [queue.enqueue(f"1.4.{i}", "scp", "sleep:0", "h")[0] for i in range(5)]
    redis_server.kill()  # a crash: SIGKILL, no shutdown save
    redis_server.start()
    # Records, the duplicate key and the messages came back from the AOF.
    assert queue.queue_lengths()[QUEUE] == 5
    again, created = queue.enqueue("1.4.0", "scp", "sleep:0", "h")
    assert not created and again.id == jobs[0].id
    later, created = queue.enqueue("1.4.9", "scp", "sleep:0", "h")
    assert created
    workers.start("w1")
    ids = [j.id for j in jobs] + [later.id]
    wait_final(queue, ids, 60)
    for job_id in ids:
        assert queue.get(job_id).state is JobState.DONE  # type: ignore[union-attr]
        assert len(workers.events(job_id, "start")) == 1  # each ran once


def test_prefetch_one_leaves_waiting_studies_to_an_idle_worker(
        workers: Workers, queue: CeleryJobQueue) -> None:
    workers.start("w1")
    long, _ = queue.enqueue("1.5.1", "scp", "sleep:6", "h")
    wait_for(lambda: workers.events(long.id, "start"), 30, "the long study to start")
    short = [queue.enqueue(f"1.5.{i}", "scp", "sleep:0", "h")[0] for i in (2, 3)]
    time.sleep(1.5)  # time enough for w1 to reserve them, if it prefetched
    assert queue.queue_lengths()[QUEUE] == 2  # still in Redis: w1 holds only its study
    workers.start("w2")
    wait_final(queue, [j.id for j in short], 30)
    assert queue.get(long.id).state is JobState.RUNNING  # type: ignore[union-attr]
    assert {queue.get(j.id).worker for j in short} != {queue.get(long.id).worker}  # type: ignore[union-attr]
    wait_final(queue, [long.id], 30)
