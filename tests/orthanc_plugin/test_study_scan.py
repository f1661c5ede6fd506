"""Which stable studies become jobs, and under which content hash."""

from __future__ import annotations

import json

from orthanc_plugin.study_scan import content_hash, scan_study
from orthanc_plugin.types import PluginConfig
from tests.orthanc_plugin.conftest import OWN_MANUFACTURER
from tests.orthanc_plugin.fake_orthanc import FakeOrthanc


def _get_json(fake: FakeOrthanc):  # type: ignore[no-untyped-def]
    return lambda uri: json.loads(fake.RestApiGet(uri))


def _ct_study(fake: FakeOrthanc, n: int = 3) -> str:
    return fake.add_instances("1.2.3", "1.2.3.1", [f"1.2.3.1.{i}" for i in range(n)])


def test_ct_study_is_queued_with_its_instances(
    fake_orthanc: FakeOrthanc, plugin_config: PluginConfig
) -> None:
    study_id = _ct_study(fake_orthanc)
    scan = scan_study(study_id, _get_json(fake_orthanc), plugin_config)
    assert scan.should_enqueue, scan.skip_reason
    assert scan.study_uid == "1.2.3"
    assert scan.n_instances == 3
    assert len(scan.analysed_series) == 1 and scan.own_series == ()
    assert scan.content_hash == content_hash(list(scan.instance_ids))


def test_our_own_results_do_not_change_the_hash(
    fake_orthanc: FakeOrthanc, plugin_config: PluginConfig
) -> None:
    study_id = _ct_study(fake_orthanc)
    before = scan_study(study_id, _get_json(fake_orthanc), plugin_config)
    fake_orthanc.add_instances("1.2.3", "9.9.1", ["9.9.1.1"], "SR", OWN_MANUFACTURER)
    fake_orthanc.add_instances("1.2.3", "9.9.2", ["9.9.2.1", "9.9.2.2"], "OT", OWN_MANUFACTURER)
    after = scan_study(study_id, _get_json(fake_orthanc), plugin_config)
    assert after.content_hash == before.content_hash
    assert after.n_instances == 3
    assert len(after.own_series) == 2


def test_added_ct_instances_change_the_hash(
    fake_orthanc: FakeOrthanc, plugin_config: PluginConfig
) -> None:
    study_id = _ct_study(fake_orthanc)
    before = scan_study(study_id, _get_json(fake_orthanc), plugin_config)
    fake_orthanc.add_instances("1.2.3", "1.2.3.1", ["1.2.3.1.99"])
    after = scan_study(study_id, _get_json(fake_orthanc), plugin_config)
    assert after.content_hash != before.content_hash
    assert after.n_instances == 4


def test_hash_ignores_order() -> None:
    assert content_hash(["b", "a", "c"]) == content_hash(["c", "b", "a"])
    assert content_hash(["a", "b"]) != content_hash(["a", "b", "c"])


def test_only_our_output_is_never_queued(
    fake_orthanc: FakeOrthanc, plugin_config: PluginConfig
) -> None:
    study_id = fake_orthanc.add_instances("4.5", "4.5.1", ["4.5.1.1"], "SR", OWN_MANUFACTURER)
    scan = scan_study(study_id, _get_json(fake_orthanc), plugin_config)
    assert not scan.should_enqueue
    assert scan.skip_reason == "only our own output series"


def test_non_ct_study_is_not_queued_and_says_why(
    fake_orthanc: FakeOrthanc, plugin_config: PluginConfig
) -> None:
    study_id = fake_orthanc.add_instances("6.7", "6.7.1", ["6.7.1.1"], "MR")
    scan = scan_study(study_id, _get_json(fake_orthanc), plugin_config)
    assert not scan.should_enqueue
    assert "CT" in scan.skip_reason


def test_dose_report_of_another_manufacturer_neither_triggers_nor_hashes(
    fake_orthanc: FakeOrthanc, plugin_config: PluginConfig
) -> None:
    study_id = _ct_study(fake_orthanc)
    before = scan_study(study_id, _get_json(fake_orthanc), plugin_config)
    fake_orthanc.add_instances("1.2.3", "1.2.3.7", ["1.2.3.7.1"], "SR", "ACME")
    after = scan_study(study_id, _get_json(fake_orthanc), plugin_config)
    assert after.content_hash == before.content_hash
    assert after.own_series == ()


def test_ct_with_our_manufacturer_is_still_analysed(
    fake_orthanc: FakeOrthanc, plugin_config: PluginConfig
) -> None:
    """A phantom made with our manufacturer string is a CT, not our output."""
    study_id = fake_orthanc.add_instances("8.8", "8.8.1", ["8.8.1.1"], "CT", OWN_MANUFACTURER)
    assert scan_study(study_id, _get_json(fake_orthanc), plugin_config).should_enqueue
