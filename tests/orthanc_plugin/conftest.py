"""Fixtures of the Orthanc door's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs import SqliteJobQueue
from orthanc_plugin.types import PluginConfig
from tests.orthanc_plugin.fake_orthanc import FakeOrthanc

OWN_MANUFACTURER = "ctnode project"


@pytest.fixture
def plugin_config(tmp_path: Path) -> PluginConfig:
    return PluginConfig(queue_path=tmp_path / "jobs.sqlite3", own_manufacturer=OWN_MANUFACTURER)


@pytest.fixture
def job_queue(plugin_config: PluginConfig) -> SqliteJobQueue:
    return SqliteJobQueue(plugin_config.queue_path)


@pytest.fixture
def fake_orthanc() -> FakeOrthanc:
    return FakeOrthanc()
