"""Worker: outcomes recorded, leases renewed while busy, bounded retries with backoff."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from jobs import (
    Job,
    JobContext,
    JobOutcome,
    JobState,
    PermanentJobError,
    RetryableJobError,
    SqliteJobQueue,
    Worker,
    WorkerPool,
    WorkerSettings,
    run_worker,
)

FAST = WorkerSettings(lease_seconds=5, poll_seconds=0.05, max_attempts=3,
                      backoff_seconds=0.1, backoff_max_seconds=1)


@pytest.fixture()
def queue(tmp_path: Path) -> SqliteJobQueue:
    return SqliteJobQueue(tmp_path / "jobs.sqlite3")


def test_settings_validate_and_backoff_is_capped() -> None:
    s = WorkerSettings(backoff_seconds=10, backoff_max_seconds=25)
    assert [s.backoff(n) for n in (0, 1, 2, 3, 4)] == [0.0, 10.0, 20.0, 25.0, 25.0]
    with pytest.raises(ValueError, match="max_attempts"):
        WorkerSettings(max_attempts=0)
    with pytest.raises(ValueError, match="lease_seconds"):
        WorkerSettings(lease_seconds=0)
    with pytest.raises(ValueError, match="must be done, failed or delivered"):
        JobOutcome(JobState.RUNNING)


def test_outcome_is_recorded(queue: SqliteJobQueue) -> None:
    job, _ = queue.enqueue("1.1", "scp", "a", "h")
    seen: list[str] = []

    def handler(j: Job, ctx: JobContext) -> JobOutcome:
        seen.append(ctx.worker)
        return JobOutcome(JobState.DELIVERED, "sent to PACS", '{"ok": true}')

    worker = Worker(queue, handler, FAST, name="w1")
    done = worker.run_once()
    assert done is not None and done.id == job.id and done.state is JobState.DELIVERED
    assert done.reason == "sent to PACS" and done.result_json == '{"ok": true}'
    assert seen == ["w1"]
    assert worker.run_once() is None


def test_transient_failures_back_off_then_give_up(queue: SqliteJobQueue) -> None:
    job, _ = queue.enqueue("1.1", "scp", "a", "h")
    calls: list[float] = []

    def handler(j: Job, ctx: JobContext) -> JobOutcome:
        calls.append(time.monotonic())
        raise RetryableJobError("destination PACS unreachable")

    worker = Worker(queue, handler, FAST, name="w")
    first = worker.run_once()
    assert first is not None and first.state is JobState.QUEUED
    assert first.reason == "attempt 1 failed: destination PACS unreachable"
    assert worker.run_once() is None  # backing off
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        latest = worker.run_once() or queue.get(job.id)
        if latest is not None and latest.state is JobState.FAILED:
            break
        time.sleep(0.02)
    final = queue.get(job.id)
    assert final is not None and final.state is JobState.FAILED
    assert final.reason == "gave up after 3 attempts: destination PACS unreachable"
    assert len(calls) == 3
    assert calls[1] - calls[0] >= 0.1 and calls[2] - calls[1] >= 0.2  # exponential


def test_permanent_failure_fails_at_once(queue: SqliteJobQueue) -> None:
    queue.enqueue("1.1", "scp", "a", "h")

    def handler(j: Job, ctx: JobContext) -> JobOutcome:
        raise PermanentJobError("spool folder missing")

    done = Worker(queue, handler, FAST).run_once()
    assert done is not None and done.state is JobState.FAILED
    assert done.reason == "spool folder missing" and done.attempts == 1


def test_unexpected_exception_is_logged_and_retried(
    queue: SqliteJobQueue, caplog: pytest.LogCaptureFixture
) -> None:
    queue.enqueue("1.1", "scp", "a", "h")

    def handler(j: Job, ctx: JobContext) -> JobOutcome:
        raise KeyError("boom")

    with caplog.at_level("ERROR", logger="jobs.worker"):
        done = Worker(queue, handler, FAST).run_once()
    assert done is not None and done.state is JobState.QUEUED
    assert "KeyError" in done.reason
    assert any("handler raised" in r.message and r.exc_info for r in caplog.records)


def test_lease_is_renewed_while_the_handler_runs(queue: SqliteJobQueue) -> None:
    job, _ = queue.enqueue("1.1", "scp", "a", "h")
    settings = WorkerSettings(lease_seconds=0.3, poll_seconds=0.05, max_attempts=3)
    stolen: list[Job | None] = []

    def handler(j: Job, ctx: JobContext) -> JobOutcome:
        for _ in range(5):  # 1 s, three times the lease
            time.sleep(0.2)
            stolen.append(queue.claim("thief", 30))
        assert not ctx.lease_lost.is_set()
        return JobOutcome(JobState.DONE, "results written")

    done = Worker(queue, handler, settings, name="slow").run_once()
    assert stolen == [None] * 5
    assert done is not None and done.state is JobState.DONE and done.attempts == 1
    assert queue.get(job.id) == done


def test_crashed_worker_job_is_taken_over(queue: SqliteJobQueue) -> None:
    job, _ = queue.enqueue("1.1", "scp", "a", "h")
    assert queue.claim("crashed", 0.1) is not None  # claimed, then the process died
    time.sleep(0.15)
    done = Worker(queue, lambda j, c: JobOutcome(JobState.DONE, "ok"), FAST).run_once()
    assert done is not None and done.id == job.id and done.state is JobState.DONE
    assert done.attempts == 2


def test_pool_runs_each_job_exactly_once(queue: SqliteJobQueue) -> None:
    ids = {queue.enqueue(f"1.{i}", "scp", "a", "h")[0].id for i in range(20)}
    queue.enqueue("9.9", "orthanc", "x", "h")  # another door's job: not ours
    calls: Counter[int] = Counter()
    lock = threading.Lock()

    def handler(j: Job, ctx: JobContext) -> JobOutcome:
        with lock:
            calls[j.id] += 1
        time.sleep(0.01)
        return JobOutcome(JobState.DONE, "ok")

    settings = WorkerSettings(lease_seconds=5, poll_seconds=0.02, sources=("scp",))
    pool = WorkerPool(queue, handler, settings, size=3)
    pool.start()
    deadline = time.monotonic() + 20
    while queue.counts()["done"] < len(ids) and time.monotonic() < deadline:
        time.sleep(0.05)
    pool.stop()
    assert set(calls) == ids and set(calls.values()) == {1}
    assert queue.counts() == {"queued": 1, "running": 0, "done": 20, "failed": 0,
                              "delivered": 0}


def test_run_worker_stops_on_event(queue: SqliteJobQueue) -> None:
    stop = threading.Event()
    thread = threading.Thread(
        target=run_worker, args=(queue, lambda j, c: JobOutcome(JobState.DONE), FAST, stop)
    )
    thread.start()
    queue.enqueue("1.1", "scp", "a", "h")
    deadline = time.monotonic() + 5
    while queue.counts()["done"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(5)
    assert not thread.is_alive() and queue.counts()["done"] == 1


def test_log_lines_during_a_job_carry_its_id(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    """Every line logged while a job runs names the job (issue 9: job IDs in logs)."""
    import logging

    from ctnode.logging_setup import ContextFilter
    from jobs import JobOutcome, JobState, SqliteJobQueue, Worker, WorkerSettings

    queue = SqliteJobQueue(tmp_path / "q.sqlite3")
    job, _ = queue.enqueue("1.2.3", "test", "loc", "hash")
    seen: list[str | None] = []

    def handler(j, ctx):  # type: ignore[no-untyped-def]
        logging.getLogger("jobs.test").warning("working")
        return JobOutcome(JobState.DONE, "ok")

    caplog.handler.addFilter(ContextFilter())
    worker = Worker(queue, handler, WorkerSettings(lease_seconds=5, poll_seconds=0.05))
    worker.run_once()
    seen = [getattr(r, "job_id", None) for r in caplog.records if r.getMessage() == "working"]
    assert seen == [str(job.id)]


def test_a_handler_returning_no_outcome_fails_the_job_at_once(queue: SqliteJobQueue) -> None:
    job, _ = queue.enqueue("1.1", "scp", "a", "h")
    done = Worker(queue, lambda j, c: None, FAST, name="w").run_once()  # type: ignore[arg-type,return-value]
    assert done is not None and done.id == job.id and done.state is JobState.FAILED
    assert "not JobOutcome" in done.reason and done.attempts == 1


class _BrokenRenewals(SqliteJobQueue):
    """A queue whose lease renewals fail (database locked, disk gone)."""

    def renew(self, job_id: int, worker: str, lease_seconds: float) -> bool:
        raise OSError("disk I/O error")


def test_lease_expiring_while_renewals_fail_is_reported_to_the_handler(tmp_path: Path) -> None:
    queue = _BrokenRenewals(tmp_path / "jobs.sqlite3")
    queue.enqueue("1.1", "scp", "a", "h")
    settings = WorkerSettings(lease_seconds=0.3, poll_seconds=0.05, max_attempts=3)
    noticed: list[bool] = []

    def handler(j: Job, ctx: JobContext) -> JobOutcome:
        noticed.append(ctx.lease_lost.wait(3))
        raise RetryableJobError("stopped: lease lost")

    Worker(queue, handler, settings, name="w").run_once()
    assert noticed == [True]


def test_workers_of_one_process_never_share_a_name(queue: SqliteJobQueue) -> None:
    pools = [WorkerPool(queue, lambda j, c: JobOutcome(JobState.DONE), FAST, size=2)
             for _ in range(2)]
    names = [w.name for pool in pools for w in pool.workers]
    names.append(Worker(queue, lambda j, c: JobOutcome(JobState.DONE), FAST).name)
    assert len(set(names)) == len(names) == 5
