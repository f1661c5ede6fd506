"""Shared fixtures of the series selector's tests: settings, a study UID, the real data."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from ctnode.settings import SelectionSettings

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


@pytest.fixture
def settings() -> SelectionSettings:
    return SelectionSettings()


@pytest.fixture
def study_uid() -> str:
    return generate_uid()


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent (fresh clone)")
    return SHARED_DATA.resolve()
