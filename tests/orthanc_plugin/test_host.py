"""The plugin against the fake ``orthanc`` module: callbacks only enqueue; REST routes."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobs import JobState, SqliteJobQueue
from orthanc_plugin.errors import PluginConfigError
from orthanc_plugin.host import PluginHost, check_authentication, parse_config
from orthanc_plugin.types import PluginConfig
from tests.orthanc_plugin.conftest import OWN_MANUFACTURER
from tests.orthanc_plugin.fake_orthanc import ChangeType, FakeOrthanc

STUDY_UID = "1.2.826.0.1.3680043.8.498.1"


@pytest.fixture
def host(
    fake_orthanc: FakeOrthanc, plugin_config: PluginConfig, job_queue: SqliteJobQueue
) -> Iterator[PluginHost]:
    h = PluginHost(fake_orthanc, plugin_config, job_queue)
    h.register()
    yield h
    h.stop()


def _wait_idle(host: PluginHost, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = host.plugin_state()
        if state["pending_events"] == 0 and sum(
            state["events"][k] for k in ("enqueued", "duplicates", "skipped", "errors")
        ) >= state["events"]["events"]:
            return
        time.sleep(0.01)
    raise AssertionError(f"plugin thread did not finish: {host.plugin_state()}")


def _ct_study(fake: FakeOrthanc, n: int = 4) -> str:
    return fake.add_instances(STUDY_UID, STUDY_UID + ".1", [f"{STUDY_UID}.1.{i}" for i in range(n)])


def test_stable_study_callback_returns_without_touching_orthanc(
    host: PluginHost, fake_orthanc: FakeOrthanc, job_queue: SqliteJobQueue
) -> None:
    study_id = _ct_study(fake_orthanc)
    fake_orthanc.rest_gate.clear()  # any REST call would now block for 10 s
    t0 = time.perf_counter()
    fake_orthanc.fire(ChangeType.STABLE_STUDY, study_id)
    elapsed = time.perf_counter() - t0
    assert elapsed < 0.5
    assert fake_orthanc.rest_calls_inside_callback == []
    assert job_queue.list() == []  # nothing queued yet: the thread is waiting on REST
    fake_orthanc.rest_gate.set()
    _wait_idle(host)
    [job] = job_queue.list()
    assert (job.study_uid, job.locator, job.source) == (STUDY_UID, study_id, "orthanc")
    assert job.n_instances == 4 and job.state is JobState.QUEUED


def test_same_study_twice_is_one_job_and_our_results_add_none(
    host: PluginHost, fake_orthanc: FakeOrthanc, job_queue: SqliteJobQueue
) -> None:
    study_id = _ct_study(fake_orthanc)
    fake_orthanc.fire(ChangeType.STABLE_STUDY, study_id)
    fake_orthanc.fire(ChangeType.STABLE_STUDY, study_id)
    _wait_idle(host)
    fake_orthanc.add_instances(STUDY_UID, "9.1", ["9.1.1"], "SR", OWN_MANUFACTURER)
    fake_orthanc.fire(ChangeType.STABLE_STUDY, study_id)
    _wait_idle(host)
    assert len(job_queue.list()) == 1
    assert host.plugin_state()["events"] == {
        "events": 3, "enqueued": 1, "duplicates": 2, "skipped": 0, "errors": 0, "swept": 0}


def test_study_that_gained_instances_is_queued_again(
    host: PluginHost, fake_orthanc: FakeOrthanc, job_queue: SqliteJobQueue
) -> None:
    study_id = _ct_study(fake_orthanc)
    fake_orthanc.fire(ChangeType.STABLE_STUDY, study_id)
    _wait_idle(host)
    fake_orthanc.add_instances(STUDY_UID, STUDY_UID + ".1", [STUDY_UID + ".1.77"])
    fake_orthanc.fire(ChangeType.STABLE_STUDY, study_id)
    _wait_idle(host)
    jobs = job_queue.list()
    assert [j.n_instances for j in jobs] == [5, 4]
    assert jobs[0].content_hash != jobs[1].content_hash


def test_other_changes_are_ignored_and_errors_are_logged_not_raised(
    host: PluginHost, fake_orthanc: FakeOrthanc, job_queue: SqliteJobQueue,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_orthanc.fire(ChangeType.NEW_INSTANCE, "whatever")
    with caplog.at_level(logging.INFO, logger="orthanc_plugin"):
        fake_orthanc.fire(ChangeType.STABLE_STUDY, "no-such-study")
        _wait_idle(host)
    assert job_queue.list() == []
    state = host.plugin_state()
    assert state["events"]["errors"] == 1 and "Unknown resource" in state["last_error"]
    assert any("could not queue Orthanc study no-such-study" in m for m in caplog.messages)
    assert state["event_thread_alive"]


def test_skip_reason_is_logged_without_patient_data(
    host: PluginHost, fake_orthanc: FakeOrthanc, caplog: pytest.LogCaptureFixture
) -> None:
    study_id = fake_orthanc.add_instances("5.5", "5.5.1", ["5.5.1.1"], "MR")
    with caplog.at_level(logging.INFO, logger="orthanc_plugin"):
        fake_orthanc.fire(ChangeType.STABLE_STUDY, study_id)
        _wait_idle(host)
    assert any(m == "study 5.5 not queued: no series of modality CT" for m in caplog.messages)


def test_orthanc_stopped_ends_the_thread(host: PluginHost, fake_orthanc: FakeOrthanc) -> None:
    fake_orthanc.fire(ChangeType.ORTHANC_STOPPED)
    assert not host.plugin_state()["event_thread_alive"]


def test_startup_sweep_queues_a_study_whose_stable_event_was_lost(
    fake_orthanc: FakeOrthanc, plugin_config: PluginConfig, job_queue: SqliteJobQueue
) -> None:
    """Orthanc crashed after the last instance, before STABLE_STUDY: the restart finds it."""
    lost = _ct_study(fake_orthanc)
    busy = fake_orthanc.add_instances("7.7", "7.7.1", ["7.7.1.1"])
    fake_orthanc.unstable.add(busy)  # still receiving: its own STABLE_STUDY will come
    fake_orthanc.add_instances(STUDY_UID, "9.1", ["9.1.1"], "SR", OWN_MANUFACTURER)
    host = PluginHost(fake_orthanc, plugin_config, job_queue)
    host.register()
    fake_orthanc.fire(ChangeType.ORTHANC_STARTED)
    fake_orthanc.fire(ChangeType.ORTHANC_STARTED)  # idempotent
    host.stop()  # lets the thread finish what it received
    [job] = job_queue.list()
    assert job.locator == lost and job.n_instances == 4
    assert host.plugin_state()["events"]["swept"] == 2


def test_startup_sweep_pages_through_changes_and_can_be_switched_off(
    fake_orthanc: FakeOrthanc, tmp_path: Path, job_queue: SqliteJobQueue
) -> None:
    from orthanc_plugin import host as host_module

    for i in range(5):
        fake_orthanc.add_instances(f"3.{i}", f"3.{i}.1", [f"3.{i}.1.{j}" for j in range(300)])
    assert len(fake_orthanc.changes) > host_module.CHANGES_PAGE
    config = PluginConfig(queue_path=job_queue.path, own_manufacturer=OWN_MANUFACTURER)
    assert PluginHost(fake_orthanc, config, job_queue).sweep_recent_changes() == 5
    assert len(job_queue.list()) == 5
    off = PluginConfig(queue_path=job_queue.path, own_manufacturer=OWN_MANUFACTURER,
                       startup_sweep_changes=0)
    assert PluginHost(fake_orthanc, off, job_queue).sweep_recent_changes() == 0


def test_startup_sweep_goes_on_past_a_study_it_cannot_queue(
    fake_orthanc: FakeOrthanc, tmp_path: Path
) -> None:
    class RefusesOne(SqliteJobQueue):
        def enqueue(self, study_uid: str, *args: object, **kwargs: object):  # type: ignore[no-untyped-def,override]
            if study_uid == "3.0":
                raise OSError("disk I/O error")
            return super().enqueue(study_uid, *args, **kwargs)  # type: ignore[arg-type]

    queue = RefusesOne(tmp_path / "refuses.sqlite3")
    for i in range(3):
        fake_orthanc.add_instances(f"3.{i}", f"3.{i}.1", [f"3.{i}.1.1"])
    config = PluginConfig(queue_path=queue.path, own_manufacturer=OWN_MANUFACTURER)
    host = PluginHost(fake_orthanc, config, queue)
    assert host.sweep_recent_changes() == 2
    assert sorted(j.study_uid for j in queue.list()) == ["3.1", "3.2"]
    assert host.plugin_state()["events"]["errors"] == 1
    assert "disk I/O error" in host.plugin_state()["last_error"]


# -- REST -------------------------------------------------------------------------------


def test_jobs_list_get_retry_and_health(
    host: PluginHost, fake_orthanc: FakeOrthanc, job_queue: SqliteJobQueue
) -> None:
    fake_orthanc.fire(ChangeType.STABLE_STUDY, _ct_study(fake_orthanc))
    _wait_idle(host)
    [job] = job_queue.list()

    listing = fake_orthanc.rest("GET", "/ai/jobs")
    assert listing.status == 200 and listing.content_type == "application/json"
    [item] = listing.json()
    assert item["id"] == job.id and item["state"] == "queued" and item["study_uid"] == STUDY_UID

    assert fake_orthanc.rest("GET", "/ai/jobs", get={"state": "failed"}).json() == []
    bad = fake_orthanc.rest("GET", "/ai/jobs", get={"state": "bogus"})
    assert bad.status == 400 and "unknown state" in bad.json()["error"]
    assert fake_orthanc.rest("GET", "/ai/jobs", get={"limit": "0"}).status == 400

    assert fake_orthanc.rest("GET", f"/ai/jobs/{job.id}").json()["id"] == job.id
    assert fake_orthanc.rest("GET", "/ai/jobs/999").status == 404

    busy = fake_orthanc.rest("POST", f"/ai/jobs/{job.id}/retry")
    assert busy.status == 409  # queued: nothing to retry
    claimed = job_queue.claim("w", 30)
    assert claimed is not None
    job_queue.mark(job.id, JobState.FAILED, "delivery to pacs failed: refused", worker="w")
    failed = fake_orthanc.rest("GET", "/ai/jobs", get={"state": "failed"}).json()
    assert failed[0]["reason"] == "delivery to pacs failed: refused"
    retried = fake_orthanc.rest("POST", f"/ai/jobs/{job.id}/retry")
    assert retried.status == 200 and retried.json()["state"] == "queued"
    assert fake_orthanc.rest("GET", f"/ai/jobs/{job.id}/retry").status == 405
    assert fake_orthanc.rest("POST", "/ai/jobs").status == 405

    health = fake_orthanc.rest("GET", "/ai/health").json()
    assert health["status"] == "ok" and health["jobs"]["queued"] == 1
    assert health["event_thread_alive"] is True


def test_rest_failure_answers_500_with_reason(
    host: PluginHost, fake_orthanc: FakeOrthanc, job_queue: SqliteJobQueue
) -> None:
    job_queue.path.unlink()
    job_queue.path.mkdir()  # the queue file is now unusable
    answer = fake_orthanc.rest("GET", "/ai/jobs")
    assert answer.status == 500 and answer.json()["error"]
    assert fake_orthanc.rest("GET", "/ai/health").status == 503


# -- configuration ------------------------------------------------------------------------


def test_parse_config_reads_the_ctnode_section() -> None:
    config = parse_config({"CtNode": {"QueuePath": "/q/jobs.sqlite3",
                                      "OwnManufacturer": "ctnode project",
                                      "TriggerModalities": ["ct"]}})
    assert str(config.queue_path) == "/q/jobs.sqlite3"
    assert config.trigger_modalities == ("CT",) and config.enabled


@pytest.mark.parametrize("section, message", [
    (None, "no \"CtNode\" section"),
    ({"OwnManufacturer": "x"}, "QueuePath is empty"),
    ({"QueuePath": "/q", "OwnManufacturer": ""}, "OwnManufacturer is empty"),
    ({"QueuePath": "/q", "OwnManufacturer": "x", "TriggerModalities": "CT"}, "list"),
    ({"QueuePath": "/q", "OwnManufacturer": "x", "Enabled": "yes"}, "true or false"),
])
def test_parse_config_fails_fast(section: object, message: str) -> None:
    config = {} if section is None else {"CtNode": section}
    with pytest.raises(PluginConfigError, match=message):
        parse_config(config)


@pytest.mark.parametrize("config, message", [
    ({"AuthenticationEnabled": False, "RegisteredUsers": {"a": "b"}}, "must be true"),
    ({"AuthenticationEnabled": True, "RegisteredUsers": {}}, "RegisteredUsers is empty"),
    ({"AuthenticationEnabled": True, "RegisteredUsers": {"ctnode": ""}}, "empty password"),
])
def test_open_rest_api_is_refused(config: dict[str, object], message: str) -> None:
    with pytest.raises(PluginConfigError, match=message):
        check_authentication(config)


def test_authentication_checks_pass_or_are_waived_explicitly() -> None:
    check_authentication({"AuthenticationEnabled": True, "RegisteredUsers": {"ctnode": "pw"}})
    check_authentication({"CtNode": {"AllowUnauthenticated": True}})
