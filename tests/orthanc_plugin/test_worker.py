"""The worker's handler against a fake Orthanc client: resume, retry, never send twice.

The pipeline and SR writer are the real ones (on a tiny CT series); only the
HTTP side is replaced, so the checkpoint and delivery-marker logic can be
driven through failures that are hard to time against real servers.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from ctnode.settings import Settings
from inference.types import StudyResult
from jobs import (
    Job,
    JobContext,
    JobState,
    PermanentJobError,
    RetryableJobError,
    SqliteJobQueue,
)
from orthanc_plugin.errors import OrthancRestError
from orthanc_plugin.study_scan import content_hash
from orthanc_plugin.worker import OrthancJobHandler, _default_pipeline
from tests.orthanc_plugin.ct_series import write_ct_series
from tests.orthanc_plugin.fake_orthanc import FakeOrthanc, orthanc_id


class FakeClient:
    """Answers like OrthancClient from a FakeOrthanc index plus local files."""

    def __init__(self, fake: FakeOrthanc, files: dict[str, Path]) -> None:
        self.fake = fake
        self.files = files
        self.uploads: list[str] = []
        self.stores: list[tuple[str, tuple[str, ...]]] = []
        self.store_failures = 0

    def get_json(self, path: str) -> Any:
        try:
            return json.loads(self.fake.RestApiGet(path))
        except ValueError as exc:
            raise OrthancRestError(str(exc), status=404) from exc

    def download_instance(self, instance_id: str, dest: Path) -> Path:
        shutil.copyfile(self.files[instance_id], dest)
        return dest

    def upload_instance(self, dicom_bytes: bytes) -> str:
        instance_id = f"up-{len(dicom_bytes)}"
        self.uploads.append(instance_id)
        return instance_id

    def store_to_modality(
        self, modality: str, ids: list[str], timeout: float | None = None
    ) -> None:
        if self.store_failures:
            self.store_failures -= 1
            raise OrthancRestError("DicomAssociation: connection refused", status=500)
        self.stores.append((modality, tuple(ids)))


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[Path]]:
    return write_ct_series(tmp_path_factory.mktemp("ct"), n_slices=24, size=48)


@pytest.fixture
def setup(tmp_path: Path, series: tuple[str, list[Path]]):  # type: ignore[no-untyped-def]
    study_uid, paths = series
    fake = FakeOrthanc()
    files = {}
    for p in paths:
        sop = p.stem
        files[orthanc_id(study_uid, "S1", sop)] = p
    study_id = fake.add_instances(study_uid, "S1", [p.stem for p in paths])
    client = FakeClient(fake, files)
    settings = Settings(
        node={"work_dir": tmp_path},
        orthanc={"destinations": ["pacs"], "results_dir": tmp_path / "results",
                 "results_retention_h": 0},
    )
    calls: list[Path] = []

    def pipeline(source: Path, s: Settings) -> StudyResult:
        calls.append(source)
        return _default_pipeline(source, s)

    handler = OrthancJobHandler(client, settings, pipeline=pipeline)  # type: ignore[arg-type]
    job = Job(id=7, study_uid=study_uid, source="orthanc", locator=study_id,
              content_hash=content_hash(list(files)), state=JobState.RUNNING, attempts=1,
              created_at=0.0, updated_at=0.0, n_instances=len(files), worker="w")
    return handler, client, job, calls, settings


def _ctx() -> JobContext:
    return JobContext(worker="w", lease_lost=threading.Event(), stop=threading.Event())


def test_delivery_failure_retries_without_analysing_again(setup) -> None:  # type: ignore[no-untyped-def]
    handler, client, job, calls, settings = setup
    client.store_failures = 1
    with pytest.raises(RetryableJobError, match="delivery to pacs failed"):
        handler(job, _ctx())
    assert len(calls) == 1 and client.stores == []
    outcome = handler(job, _ctx())
    assert len(calls) == 1  # resumed from the checkpoint
    assert outcome.state is JobState.DELIVERED
    assert len(client.stores) == 1 and client.stores[0][0] == "pacs"
    result = json.loads(outcome.result_json)
    assert result["delivered_to"] == ["pacs"] and result["sr_written"]
    assert not (settings.orthanc.results_dir / f"job-7-{job.content_hash[:16]}").exists()


def test_a_destination_already_served_is_not_sent_again(setup) -> None:  # type: ignore[no-untyped-def]
    handler, client, job, calls, settings = setup
    settings.orthanc.results_retention_h = 24  # markers kept, as after a crash before `mark`
    handler(job, _ctx())
    handler(job, _ctx())
    assert len(client.stores) == 1 and len(calls) == 1
    assert len(client.uploads) == 2 * len(set(client.uploads))  # re-upload is idempotent


def test_old_job_folders_are_pruned_after_the_retention_time(setup) -> None:  # type: ignore[no-untyped-def]
    handler, client, job, calls, settings = setup
    settings.orthanc.results_retention_h = 1
    old = settings.orthanc.results_dir / "job-1-0123456789abcdef"
    old.mkdir(parents=True)
    recent = settings.orthanc.results_dir / "job-2-0123456789abcdef"
    recent.mkdir()
    os.utime(old, (0, 0))
    handler(job, _ctx())
    assert not old.exists() and recent.exists()
    assert (settings.orthanc.results_dir / f"job-7-{job.content_hash[:16]}").exists()


def test_changed_study_is_left_to_the_newer_job(setup) -> None:  # type: ignore[no-untyped-def]
    handler, client, job, calls, _ = setup
    client.fake.add_instances(job.study_uid, "S1", ["late.1"])
    outcome = handler(job, _ctx())
    assert outcome.state is JobState.DONE and outcome.reason.startswith("superseded")
    assert calls == [] and client.stores == []


def test_study_gone_from_orthanc_fails_permanently(setup) -> None:  # type: ignore[no-untyped-def]
    handler, client, job, calls, _ = setup
    client.fake.studies.clear()
    with pytest.raises(PermanentJobError, match="not found in Orthanc"):
        handler(job, _ctx())


def test_pruning_spares_the_folders_of_unfinished_jobs(setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, client, job, _, settings = setup
    queue = SqliteJobQueue(tmp_path / "jobs.sqlite3")
    waiting, _ = queue.enqueue("1.2.3", "orthanc", "a", "h1")  # in backoff after a failure
    finished, _ = queue.enqueue("1.2.4", "orthanc", "b", "h2")
    queue.mark(finished.id, JobState.DONE, "ok")
    handler = OrthancJobHandler(client, settings, job_queue=queue)  # type: ignore[arg-type]
    folders = {}
    for j in (waiting, finished):
        folders[j.id] = settings.orthanc.results_dir / f"job-{j.id}-0123456789abcdef"
        folders[j.id].mkdir(parents=True)
        (folders[j.id] / "delivered-pacs.json").write_text("{}")
        os.utime(folders[j.id], (0, 0))
    handler(job, _ctx())  # retention 0: prunes every old folder it may
    assert folders[waiting.id].exists() and not folders[finished.id].exists()


def test_a_cut_short_checkpoint_means_analysing_again(setup) -> None:  # type: ignore[no-untyped-def]
    handler, client, job, calls, settings = setup
    job_dir = settings.orthanc.results_dir / f"job-7-{job.content_hash[:16]}"
    job_dir.mkdir(parents=True)
    (job_dir / "written.json").write_text('{"content_hash": ')
    outcome = handler(job, _ctx())
    assert outcome.state is JobState.DELIVERED and len(calls) == 1
