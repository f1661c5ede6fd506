"""Shared fixtures of the series selector's tests: settings, a study UID, the real data."""

from __future__ import annotations

import pytest
from pydicom.uid import generate_uid

from ctnode.settings import SelectionSettings


@pytest.fixture
def settings() -> SelectionSettings:
    return SelectionSettings()


@pytest.fixture
def study_uid() -> str:
    return generate_uid()

