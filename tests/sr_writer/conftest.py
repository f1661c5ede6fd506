"""Fixtures of the sr_writer tests: a tiny synthetic CT study on disk and settings."""

from __future__ import annotations

import pytest

from ctnode.settings import OutputSettings
from tests.sr_writer.synthetic import SyntheticStudy, write_study

CYRILLIC_NAME = "Иванов^Иван Петрович"


@pytest.fixture(scope="session")
def study(tmp_path_factory: pytest.TempPathFactory) -> SyntheticStudy:
    """The synthetic chest CT (Latin-1 name, ISO_IR 100)."""
    return write_study(tmp_path_factory.mktemp("src"))


@pytest.fixture(scope="session")
def cyrillic_study(tmp_path_factory: pytest.TempPathFactory) -> SyntheticStudy:
    """The same phantom with a Cyrillic patient name under ISO_IR 192 (UTF-8)."""
    return write_study(tmp_path_factory.mktemp("src_cyr"), patient_name=CYRILLIC_NAME,
                       charset="ISO_IR 192", seed="sr-writer-cyrillic")


@pytest.fixture()
def settings() -> OutputSettings:
    return OutputSettings()


