"""ScpNode pieces in-process: enqueue on stability, spool retention, the jobs CLI."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid
from typer.testing import CliRunner

from ctnode.cli import app
from ctnode.settings import Settings
from jobs import JobState
from scp_node import ScpNode, run_scp
from tests.scp_node.conftest import write_ct_series


@pytest.fixture()
def node(tmp_path: Path) -> ScpNode:
    settings = Settings(node={"work_dir": tmp_path / "var"},
                        scp={"spool_retention_hours": 1.0, "min_free_mb": 0})
    return ScpNode(settings)


def _spool_study(node: ScpNode, tmp_path: Path, n: int = 2) -> str:
    study = generate_uid()
    for path in write_ct_series(tmp_path / "src" / study, study, n=n):
        received = tmp_path / "incoming.dcm"
        shutil.copyfile(path, received)
        node.spool.store(received, pydicom.dcmread(path).SOPInstanceUID)
    return study


def test_stable_study_is_queued_with_its_content(node: ScpNode, tmp_path: Path) -> None:
    study = _spool_study(node, tmp_path)
    node.enqueue_study(study)
    node.enqueue_study(study)  # unchanged content: no second job
    (job,) = node.queue.list()
    assert job.study_uid == study and job.source == "scp" and job.n_instances == 2
    assert job.locator == str(node.spool.study_dir(study))
    assert job.content_hash == node.spool.study(study).content_hash
    more = write_ct_series(tmp_path / "more", study, n=1, series_number=5)
    shutil.copyfile(more[0], tmp_path / "incoming.dcm")
    node.spool.store(tmp_path / "incoming.dcm",
                     pydicom.dcmread(more[0]).SOPInstanceUID)
    node.enqueue_study(study)  # the study grew: analysed again
    assert [j.n_instances for j in node.queue.list()] == [3, 2]


def test_spool_retention(node: ScpNode, tmp_path: Path) -> None:
    delivered = _spool_study(node, tmp_path)
    failed = _spool_study(node, tmp_path)
    receiving = _spool_study(node, tmp_path)
    for study, state in ((delivered, JobState.DELIVERED), (failed, JobState.FAILED)):
        node.enqueue_study(study)
        job = node.queue.claim("w", 30)
        assert job is not None and job.study_uid == study
        node.queue.mark(job.id, state, "test", worker="w")
    node.monitor.touch(receiving)
    now = time.time()
    assert node.clean_spool(now) == []  # retention (1 h) not over
    assert node.clean_spool(now + 3601) == [delivered]
    assert node.spool.studies() == sorted([failed, receiving])  # failed kept for a retry


def test_result_folders_follow_the_retention(node: ScpNode, tmp_path: Path) -> None:
    """SR/SC folders of delivered jobs go after the retention; failed jobs keep theirs."""
    from scp_node import results_root

    states = {}
    for state in (JobState.DELIVERED, JobState.FAILED):
        study = _spool_study(node, tmp_path)
        node.enqueue_study(study)
        job = node.queue.claim("w", 30)
        assert job is not None
        node.queue.mark(job.id, state, "test", worker="w")
        folder = results_root(node.settings) / f"job-{job.id}"
        folder.mkdir(parents=True)
        (folder / "sr.dcm").write_bytes(b"x")
        states[state] = folder
    now = time.time()
    node.clean_spool(now)
    assert states[JobState.DELIVERED].exists()  # retention (1 h) not over
    node.clean_spool(now + 3601)
    assert not states[JobState.DELIVERED].exists()
    assert (states[JobState.FAILED] / "sr.dcm").exists()  # kept for `ctnode jobs retry`


def test_jobs_command_lists_and_retries(node: ScpNode, tmp_path: Path) -> None:
    study = _spool_study(node, tmp_path)
    node.enqueue_study(study)
    job = node.queue.claim("w", 30)
    assert job is not None
    node.queue.mark(job.id, JobState.FAILED, "PACS@10.0.0.1:104: association rejected",
                    worker="w")
    queue = str(node.queue.path)
    runner = CliRunner()
    listed = runner.invoke(app, ["jobs", "--queue", queue])
    assert listed.exit_code == 0, listed.output
    assert "failed: 1" in listed.output and study in listed.output
    assert "association rejected" in listed.output
    retried = runner.invoke(app, ["jobs", "retry", str(job.id), "--queue", queue])
    assert retried.exit_code == 0 and f"job {job.id} queued again" in retried.output
    again = node.queue.get(job.id)
    assert again is not None and again.state is JobState.QUEUED and again.attempts == 0
    refused = runner.invoke(app, ["jobs", "retry", str(job.id), "--queue", queue])
    assert refused.exit_code == 1 and "already queued" in refused.output
    shown = runner.invoke(app, ["jobs", "show", str(job.id), "--queue", queue])
    assert shown.exit_code == 0 and '"state": "queued"' in shown.output
    only_done = runner.invoke(app, ["jobs", "--state", "done", "--json", "--queue", queue])
    assert only_done.exit_code == 0 and only_done.output == ""


def test_spool_retention_restarts_when_a_study_is_sent_again(
    node: ScpNode, tmp_path: Path
) -> None:
    study = _spool_study(node, tmp_path)
    node.enqueue_study(study)
    job = node.queue.claim("w", 30)
    assert job is not None
    node.queue.mark(job.id, JobState.DELIVERED, "test", worker="w")
    now = time.time()
    resent = next(node.spool.study_dir(study).glob("*/*.dcm"))  # same instance, again
    shutil.copyfile(resent, tmp_path / "incoming.dcm")
    node.spool.store(tmp_path / "incoming.dcm", resent.stem)
    os.utime(resent, (now + 3000, now + 3000))  # as if it came back 50 min after delivery
    assert node.spool.study(study).content_hash == job.content_hash
    assert node.clean_spool(now + 3601) == []
    assert node.clean_spool(now + 3000 + 3601) == [study]


def test_a_node_that_cannot_listen_leaves_no_threads_behind(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = Settings(node={"work_dir": tmp_path / "var"},
                            scp={"port": taken.getsockname()[1], "min_free_mb": 0})
        before = set(threading.enumerate())
        with pytest.raises(OSError):
            run_scp(settings, threading.Event())
    left = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
    assert left == []


def test_delivery_stops_once_the_lease_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobs import Job, JobContext, RetryableJobError
    from scp_node.handler import OUTPUTS, ScpJobHandler

    settings = Settings(node={"work_dir": tmp_path / "var"}, scp={"destinations": [
        {"ae_title": "PACS1", "host": "127.0.0.1", "port": 104},
        {"ae_title": "PACS2", "host": "127.0.0.1", "port": 105}]})
    handler = ScpJobHandler(settings)
    study_dir = tmp_path / "spool" / "1.2.3"
    study_dir.mkdir(parents=True)
    job = Job(id=3, study_uid="1.2.3", source="scp", locator=str(study_dir), content_hash="h",
              state=JobState.RUNNING, attempts=2, created_at=0.0, updated_at=0.0, worker="w")
    out_dir = handler.root / "job-3"
    out_dir.mkdir(parents=True)
    (out_dir / "sr.dcm").write_bytes(b"x")
    (out_dir / OUTPUTS).write_text(json.dumps(
        {"content_hash": "h", "objects": ["sr.dcm"], "summary": "Success"}))
    ctx = JobContext(worker="w", lease_lost=threading.Event(), stop=threading.Event())
    sent: list[str] = []

    def deliver(files: list[Path], target: object, *args: object) -> None:
        sent.append(target.key)  # type: ignore[attr-defined]
        ctx.lease_lost.set()  # another worker takes the job over meanwhile

    monkeypatch.setattr("scp_node.handler.deliver", deliver)
    with pytest.raises(RetryableJobError, match="lease lost during delivery"):
        handler(job, ctx)
    assert sent == ["PACS1@127.0.0.1:104"]
