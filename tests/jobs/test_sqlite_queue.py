"""SqliteJobQueue: states, idempotent enqueue, atomic claims, leases, retries."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs import (
    JobNotFoundError,
    JobState,
    JobStateError,
    LeaseLostError,
    SqliteJobQueue,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def queue(tmp_path: Path) -> SqliteJobQueue:
    return SqliteJobQueue(tmp_path / "q" / "jobs.sqlite3")


def test_database_is_in_wal_mode(queue: SqliteJobQueue) -> None:
    conn = sqlite3.connect(queue.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_enqueue_is_idempotent_on_study_and_content(queue: SqliteJobQueue) -> None:
    job, created = queue.enqueue("1.2.3", "scp", "/spool/1.2.3", "h1", n_instances=3)
    assert created and job.state is JobState.QUEUED and job.attempts == 0
    assert job.n_instances == 3 and job.created_at == job.updated_at
    again, created_again = queue.enqueue("1.2.3", "scp", "/spool/1.2.3", "h1", n_instances=3)
    assert not created_again and again.id == job.id
    changed, created_changed = queue.enqueue("1.2.3", "scp", "/spool/1.2.3", "h2", 4)
    assert created_changed and changed.id != job.id
    assert queue.counts() == {"queued": 2, "running": 0, "done": 0, "failed": 0,
                              "delivered": 0}


def test_enqueue_refuses_empty_identity(queue: SqliteJobQueue) -> None:
    with pytest.raises(ValueError, match="study_uid"):
        queue.enqueue("", "scp", "x", "h")
    with pytest.raises(ValueError, match="content_hash"):
        queue.enqueue("1.2", "scp", "x", "")


def test_claim_takes_oldest_once_and_counts_attempts(queue: SqliteJobQueue) -> None:
    first, _ = queue.enqueue("1.1", "scp", "a", "h")
    second, _ = queue.enqueue("1.2", "scp", "b", "h")
    got = queue.claim("w1", 30)
    assert got is not None and got.id == first.id
    assert got.state is JobState.RUNNING and got.worker == "w1" and got.attempts == 1
    assert got.lease_until > time.time() + 25
    other = queue.claim("w2", 30)
    assert other is not None and other.id == second.id
    assert queue.claim("w3", 30) is None


def test_claim_filters_by_source(queue: SqliteJobQueue) -> None:
    queue.enqueue("1.1", "orthanc", "abc", "h")
    scp_job, _ = queue.enqueue("1.2", "scp", "/s", "h")
    got = queue.claim("w", 30, sources=["scp"])
    assert got is not None and got.id == scp_job.id
    assert queue.claim("w", 30, sources=["scp"]) is None


def test_expired_lease_makes_job_claimable_again(queue: SqliteJobQueue) -> None:
    job, _ = queue.enqueue("1.1", "scp", "a", "h")
    assert queue.claim("dead", 0.2) is not None
    assert queue.claim("alive", 30) is None
    time.sleep(0.3)
    again = queue.claim("alive", 30)
    assert again is not None and again.id == job.id
    assert again.worker == "alive" and again.attempts == 2
    # The dead worker comes back: it may neither renew nor record.
    assert not queue.renew(job.id, "dead", 30)
    with pytest.raises(LeaseLostError):
        queue.mark(job.id, JobState.DONE, "late", worker="dead")
    assert queue.renew(job.id, "alive", 30)


def test_poison_job_fails_after_max_attempts(queue: SqliteJobQueue) -> None:
    job, _ = queue.enqueue("1.1", "scp", "a", "h")
    for _ in range(2):
        assert queue.claim("crashy", 0.05, max_attempts=2) is not None
        time.sleep(0.1)
    assert queue.claim("next", 30, max_attempts=2) is None
    failed = queue.get(job.id)
    assert failed is not None and failed.state is JobState.FAILED
    assert "2 attempts" in failed.reason and "crashy" in failed.reason


def test_mark_defer_and_retry(queue: SqliteJobQueue) -> None:
    job, _ = queue.enqueue("1.1", "scp", "a", "h")
    queue.claim("w", 30)
    deferred = queue.defer(job.id, "destination down", 0.3, worker="w")
    assert deferred.state is JobState.QUEUED and deferred.reason == "destination down"
    assert queue.claim("w", 30) is None  # not due yet
    time.sleep(0.35)
    claimed = queue.claim("w", 30)
    assert claimed is not None and claimed.attempts == 2
    result = json.dumps({"delivered": ["PACS"]})
    done = queue.mark(job.id, JobState.DELIVERED, "sent to PACS", result, worker="w")
    assert done.state is JobState.DELIVERED and done.result_json == result
    assert done.lease_until == 0
    retried = queue.retry(job.id)
    assert retried.state is JobState.QUEUED and retried.attempts == 0
    assert "was delivered" in retried.reason
    with pytest.raises(JobStateError):
        queue.retry(job.id)
    queue.claim("w", 30)
    with pytest.raises(JobStateError, match="running"):
        queue.retry(job.id)
    with pytest.raises(JobNotFoundError):
        queue.retry(999)
    assert queue.get(999) is None


def test_list_newest_first_and_by_state(queue: SqliteJobQueue) -> None:
    ids = [queue.enqueue(f"1.{i}", "scp", "a", "h")[0].id for i in range(3)]
    queue.claim("w", 30)
    assert [j.id for j in queue.list()] == ids[::-1]
    assert [j.id for j in queue.list(JobState.RUNNING)] == [ids[0]]
    assert [j.id for j in queue.list(limit=1)] == [ids[2]]
    assert [j.id for j in queue.find("1.1")] == [ids[1]]


def test_queue_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    job, _ = SqliteJobQueue(path).enqueue("1.1", "scp", "a", "h")
    reopened = SqliteJobQueue(path)
    assert reopened.get(job.id) == job


_CLAIMER = """
import sys, time
from pathlib import Path
from jobs import SqliteJobQueue
q = SqliteJobQueue(Path(sys.argv[1]))
got = []
deadline = time.time() + 20
while time.time() < deadline:
    job = q.claim(sys.argv[2], 60)
    if job is None:
        break
    got.append(job.id)
print(" ".join(map(str, got)))
"""


def test_concurrent_processes_never_claim_the_same_job(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    queue = SqliteJobQueue(path)
    n_jobs = 60
    for i in range(n_jobs):
        queue.enqueue(f"1.{i}", "scp", "a", "h")
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    procs = [
        subprocess.Popen([sys.executable, "-c", _CLAIMER, str(path), f"p{i}"],
                         stdout=subprocess.PIPE, text=True, env=env)
        for i in range(4)
    ]
    claimed: list[int] = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        claimed += [int(x) for x in out.split()]
    assert sorted(claimed) == sorted(j.id for j in queue.list(limit=1000))
    assert len(claimed) == n_jobs == len(set(claimed))
    assert queue.counts()["running"] == n_jobs


def test_importable_without_the_virtualenv(tmp_path: Path) -> None:
    """The Orthanc plugin imports jobs from Debian's system Python: stdlib only."""
    system_python = shutil.which("python3", path="/usr/bin")
    if system_python is None:
        pytest.skip("no system python3")
    code = (
        "import sys; from pathlib import Path; from jobs import SqliteJobQueue;"
        "q = SqliteJobQueue(Path(sys.argv[1])); print(q.enqueue('1.9', 'orthanc', 'x', 'h')[1]);"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('pydantic', 'numpy', 'ctnode')];"
        "print(bad)"
    )
    out = subprocess.run(
        [system_python, "-s", "-c", code, str(tmp_path / "j.sqlite3")],
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout.split("\n")
    assert out[0] == "True" and out[1] == "[]"
