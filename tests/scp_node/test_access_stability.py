"""Access policy decisions (PS3.8 reject reasons) and the study-stable timer."""

from __future__ import annotations

import pytest

from scp_node import ScpConfigError, StabilityMonitor, build_policy


def test_open_policy_allows_anyone() -> None:
    assert build_policy([], [], None).check("ANY", "CTNODE", "10.1.2.3").allowed


def test_unknown_calling_ae_gets_calling_ae_not_recognised() -> None:
    policy = build_policy(["MODALITY", " PACS "], [], None)
    assert policy.check("PACS", "X", "127.0.0.1").allowed
    decision = policy.check("INTRUDER", "CTNODE", "127.0.0.1")
    assert not decision.allowed
    assert decision.reject == (0x01, 0x01, 0x03)  # rejected-permanent, service-user, 3
    assert "INTRUDER" in decision.reason


def test_source_address_networks() -> None:
    policy = build_policy([], ["127.0.0.1", "10.0.0.0/8"], None)
    assert policy.check("A", "B", "10.20.30.40").allowed
    assert policy.check("A", "B", "::ffff:127.0.0.1").allowed
    decision = policy.check("A", "B", "192.168.1.1")
    assert not decision.allowed and decision.reject == (0x01, 0x01, 0x01)
    assert not policy.check("A", "B", "not-an-ip").allowed


def test_called_ae_title_when_required() -> None:
    policy = build_policy([], [], "CTNODE")
    assert policy.check("A", "CTNODE ", "127.0.0.1").allowed
    assert policy.check("A", "ANY-SCP", "127.0.0.1").reject == (0x01, 0x01, 0x07)


def test_bad_network_fails_at_start_up() -> None:
    with pytest.raises(ScpConfigError, match="300.1.1.1"):
        build_policy([], ["300.1.1.1"], None)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_study_is_stable_after_quiet_period() -> None:
    clock = _Clock()
    handed: list[str] = []
    monitor = StabilityMonitor(5, handed.append, clock=clock)
    monitor.touch("1.1")
    clock.now += 3
    monitor.touch("1.2")
    clock.now += 2.5  # 1.1 quiet for 5.5 s, 1.2 for 2.5 s
    assert monitor.check() == ["1.1"] and handed == ["1.1"]
    monitor.touch("1.2")  # a new instance restarts its timer
    clock.now += 4
    assert monitor.check() == [] and monitor.pending() == {"1.2"}
    clock.now += 1
    assert monitor.check() == ["1.2"] and monitor.pending() == set()


def test_failed_hand_over_is_retried() -> None:
    clock = _Clock()
    calls: list[str] = []

    def flaky(uid: str) -> None:
        calls.append(uid)
        if len(calls) == 1:
            raise OSError("database is locked")

    monitor = StabilityMonitor(1, flaky, clock=clock)
    monitor.touch("1.1")
    clock.now += 1
    assert monitor.check() == [] and monitor.pending() == {"1.1"}
    clock.now += 1
    assert monitor.check() == ["1.1"] and calls == ["1.1", "1.1"]
