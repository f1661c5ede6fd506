"""CeleryJobQueue and its Redis records against a real redis-server (no worker running).

The state machine must be the SQLite queue's: idempotent enqueue, one holder
at a time, takeover of a vanished holder, poison after max_attempts, the
owner checks of mark/defer, the operator's retry, and one message per run.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from jobs import (
    CeleryConfig,
    JobState,
    JobStateError,
    LeaseLostError,
    TakeKind,
)
from jobs.celery_queue import CeleryJobQueue
from tests.jobs.redis_server import RedisServer


def make_queue(server: RedisServer, queues: tuple[str, ...] = ("q.cpu", "q.gpu")
               ) -> CeleryJobQueue:
    return CeleryJobQueue(CeleryConfig(broker_url=server.url, key_prefix="t",
                                       default_queue=queues[0], queues=queues))


def test_enqueue_is_idempotent_and_sends_one_message(redis_server: RedisServer) -> None:
    q = make_queue(redis_server)
    job, created = q.enqueue("1.2.3", "scp", "/spool/1.2.3", "h1", 5)
    again, created_again = q.enqueue("1.2.3", "scp", "/spool/1.2.3", "h1", 5)
    assert created and not created_again and again.id == job.id
    assert job.queue == "q.cpu" and job.state is JobState.QUEUED and job.n_instances == 5
    assert q.queue_lengths() == {"q.cpu": 1, "q.gpu": 0}
    newer, created_newer = q.enqueue("1.2.3", "scp", "/spool/1.2.3", "h2", 6)
    assert created_newer and newer.id != job.id  # the study gained instances
    assert [j.id for j in q.find("1.2.3")] == [newer.id, job.id]
    assert q.queue_lengths()["q.cpu"] == 2
    q.close()


def test_concurrent_duplicate_enqueues_make_one_job(redis_server: RedisServer) -> None:
    q = make_queue(redis_server)
    results: list[tuple[int, bool]] = []
    barrier = threading.Barrier(6)

    def enqueue() -> None:
        barrier.wait()
        job, created = q.enqueue("1.9", "orthanc", "abc", "same", 1)
        results.append((job.id, created))

    threads = [threading.Thread(target=enqueue) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({job_id for job_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert q.queue_lengths()["q.cpu"] == 1
    assert q.counts()["queued"] == 1


def test_take_lets_one_worker_hold_a_job(redis_server: RedisServer) -> None:
    q = make_queue(redis_server)
    job, _ = q.enqueue("1.1", "scp", "a", "h")
    first = q.take(job.id, "w1", 30, 3)
    assert first.kind is TakeKind.CLAIMED and first.job is not None
    assert first.job.attempts == 1 and first.job.worker == "w1"
    second = q.take(job.id, "w2", 30, 3)
    assert second.kind is TakeKind.BUSY and 25 < second.wait_seconds <= 30
    assert q.renew(job.id, "w1", 30) and not q.renew(job.id, "w2", 30)
    with pytest.raises(LeaseLostError):
        q.mark(job.id, JobState.DONE, "not mine", worker="w2")
    done = q.mark(job.id, JobState.DONE, "ok", '{"a": 1}', worker="w1")
    assert done.state is JobState.DONE and done.lease_until == 0
    assert q.take(job.id, "w2", 30, 3).kind is TakeKind.FINAL  # a duplicate message
    assert q.counts() == {"queued": 0, "running": 0, "done": 1, "failed": 0, "delivered": 0}
    assert q.take(999, "w1", 30, 3).kind is TakeKind.MISSING


def test_vanished_holder_is_taken_over_then_the_job_is_given_up(
        redis_server: RedisServer) -> None:
    q = make_queue(redis_server)
    job, _ = q.enqueue("1.1", "scp", "a", "h")
    assert q.take(job.id, "w1", 0.2, 2).kind is TakeKind.CLAIMED
    # A process known dead is taken over before its lease ends.
    over = q.take(job.id, "w2", 30, 2, owner_dead=lambda name: name == "w1")
    assert over.kind is TakeKind.TAKEN_OVER and over.job is not None
    assert over.job.attempts == 2
    gave_up = q.take(job.id, "w3", 30, 2, owner_dead=lambda name: True)
    assert gave_up.kind is TakeKind.GAVE_UP and gave_up.job is not None
    assert gave_up.job.state is JobState.FAILED
    assert gave_up.job.reason == "gave up: its worker stopped during each of 2 attempts (last: w2)"
    assert [j.id for j in q.list(JobState.FAILED)] == [job.id]


def test_expired_lease_is_taken_over(redis_server: RedisServer) -> None:
    q = make_queue(redis_server)
    job, _ = q.enqueue("1.1", "scp", "a", "h")
    q.take(job.id, "w1", 0.2, 5)
    time.sleep(0.3)
    verdict = q.take(job.id, "w2", 30, 5)
    assert verdict.kind is TakeKind.TAKEN_OVER and verdict.job is not None
    assert verdict.job.worker == "w2" and not q.renew(job.id, "w1", 30)


def test_defer_sends_a_due_later_message_and_retry_resets(redis_server: RedisServer) -> None:
    q = make_queue(redis_server)
    job, _ = q.enqueue("1.1", "scp", "a", "h")
    q.take(job.id, "w1", 30, 5)
    deferred = q.defer(job.id, "attempt 1 failed: PACS down", 60, worker="w1")
    assert deferred.state is JobState.QUEUED and deferred.attempts == 1
    verdict = q.take(job.id, "w1", 30, 5)
    assert verdict.kind is TakeKind.NOT_DUE and 55 < verdict.wait_seconds <= 60
    assert q.store.is_published(job.id)
    with pytest.raises(JobStateError):
        q.retry(job.id)  # already queued
    q.mark(job.id, JobState.FAILED, "given up by hand")
    again = q.retry(job.id)
    assert again.state is JobState.QUEUED and again.attempts == 0
    assert again.reason == "retry requested (was failed: given up by hand)"
    assert q.take(job.id, "w1", 30, 5).kind is TakeKind.CLAIMED


def test_a_job_whose_message_was_never_sent_is_sent_again(redis_server: RedisServer) -> None:
    q = make_queue(redis_server)
    # A producer that died between writing the record and sending the message:
    job, _ = q.store.create("1.5", "scp", "a", "h", 1, "q.cpu")
    assert q.queue_lengths()["q.cpu"] == 0
    assert q.republish_unsent(min_age_seconds=0) == 1
    assert q.queue_lengths()["q.cpu"] == 1 and q.store.is_published(job.id)
    assert q.republish_unsent(min_age_seconds=0) == 0
    # The door's own re-enqueue (spool recovery) sends it too, once the producer had
    # time to send it itself (a concurrent duplicate does not send a second message).
    q.store.create("1.6", "scp", "b", "h", 1, "q.cpu")
    _, created = q.enqueue("1.6", "scp", "b", "h", 1)
    assert not created and q.queue_lengths()["q.cpu"] == 1
    q.unsent_grace_s = 0.0
    _, created = q.enqueue("1.6", "scp", "b", "h", 1)
    assert not created and q.queue_lengths()["q.cpu"] == 2


def test_claim_finds_nothing_and_pool_starts_no_thread(redis_server: RedisServer) -> None:
    from jobs import JobOutcome, WorkerPool, WorkerSettings

    q = make_queue(redis_server)
    q.enqueue("1.1", "scp", "a", "h")
    assert q.claim("w1", 30) is None
    pool = WorkerPool(q, lambda job, ctx: JobOutcome(JobState.DONE), WorkerSettings(), size=2)
    pool.start()
    assert pool._threads == []
    pool.stop()


def test_ctnode_jobs_reads_the_celery_back_end(
        redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from typer.testing import CliRunner

    from ctnode.cli import app
    from ctnode.settings import get_settings

    monkeypatch.setenv("CTNODE_JOBS__BACKEND", "celery")
    monkeypatch.setenv("CTNODE_JOBS__BROKER_URL", redis_server.url)
    monkeypatch.setenv("CTNODE_JOBS__REDIS_TIMEOUT_S", "1")
    get_settings.cache_clear()
    try:
        q = CeleryJobQueue(CeleryConfig(broker_url=redis_server.url))
        ok, _ = q.enqueue("1.7.1", "scp", "a", "h")
        bad, _ = q.enqueue("1.7.2", "orthanc", "b", "h")
        q.take(bad.id, "w1", 30, 3)
        q.mark(bad.id, JobState.FAILED, "no usable series: every series is a localizer",
               worker="w1")
        runner = CliRunner()
        listed = runner.invoke(app, ["jobs"])
        assert listed.exit_code == 0, listed.output
        assert "queued: 1  running: 0  done: 0  failed: 1  delivered: 0" in listed.output
        # Both messages still wait: no worker consumed them (the take above was by hand).
        assert "waiting in queue: ctnode.cpu: 2  ctnode.gpu: 0" in listed.output
        assert "no usable series: every series is a localizer" in listed.output
        failed = runner.invoke(app, ["jobs", "--state", "failed", "--json"])
        rows = [json.loads(line) for line in failed.output.splitlines()]
        assert [(r["id"], r["queue"], r["state"]) for r in rows] == [
            (bad.id, "ctnode.cpu", "failed")]
        retried = runner.invoke(app, ["jobs", "retry", str(bad.id)])
        assert retried.exit_code == 0 and q.get(bad.id).state is JobState.QUEUED  # type: ignore[union-attr]
        assert q.queue_lengths()["ctnode.cpu"] == 3 and ok.id != bad.id
        redis_server.stop()
        down = runner.invoke(app, ["jobs"])
        assert down.exit_code == 2 and "job queue not reachable" in down.output
    finally:
        get_settings.cache_clear()


def test_metrics_and_status_read_the_celery_back_end(redis_server: RedisServer) -> None:
    from api.metrics import Metrics, job_sources
    from ctnode.commands.status import node_status
    from ctnode.settings import Settings

    settings = Settings(jobs={"backend": "celery", "broker_url": redis_server.url})
    q = CeleryJobQueue(CeleryConfig(broker_url=redis_server.url))
    for i in range(3):
        q.enqueue(f"1.8.{i}", "scp", f"/spool/{i}", "h")
    q.take(1, "w1", 30, 3)
    jobs_counts, queue_lengths = job_sources(settings)
    text = Metrics(jobs_counts=jobs_counts, queue_lengths=queue_lengths).render().decode()
    st = node_status("http://node", {"status": "healthy"}, text)
    assert dict(st.jobs) == {"queued": 2, "running": 1, "done": 0, "failed": 0, "delivered": 0}
    assert dict(st.queues) == {"ctnode.cpu": 3, "ctnode.gpu": 0}


def test_forwarder_moves_the_plugin_jobs_into_celery_once(
        redis_server: RedisServer, tmp_path: Path) -> None:
    from jobs import ForwardHandler, SqliteJobQueue, Worker, WorkerSettings

    outbox = SqliteJobQueue(tmp_path / "jobs.sqlite3")  # what the Orthanc plugin fills
    target = make_queue(redis_server)
    outbox.enqueue("1.9.1", "orthanc", "orthanc-id-1", "h", 12)
    worker = Worker(outbox, ForwardHandler(target), WorkerSettings(sources=("orthanc",)))
    done = worker.run_once()
    assert done is not None and done.state is JobState.DONE
    forwarded = target.find("1.9.1")
    assert len(forwarded) == 1 and forwarded[0].locator == "orthanc-id-1"
    assert done.reason == f"forwarded to the celery queue as job {forwarded[0].id}"
    # A forwarder that died before marking its job done forwards it again: a no-op there.
    outbox.retry(done.id)
    again = worker.run_once()
    assert again is not None and again.state is JobState.DONE
    assert len(target.find("1.9.1")) == 1 and target.queue_lengths()["q.cpu"] == 1


def test_studies_go_to_the_gpu_queue_when_a_gpu_model_is_enabled() -> None:
    from ctnode.settings import Settings
    from jobs import celery_config

    cpu = Settings(jobs={"backend": "celery", "gpu_models": ["ct_fm"]})
    assert celery_config(cpu).default_queue == "ctnode.cpu"
    gpu = Settings(jobs={"backend": "celery", "gpu_models": ["ct_fm"]},
                   inference={"enabled_models": ["chest_quant", "ct_fm"]})
    config = celery_config(gpu)
    assert config.default_queue == "ctnode.gpu" and config.queues == ("ctnode.cpu", "ctnode.gpu")
    assert "redis://" not in repr(config)  # the URL may hold the password
