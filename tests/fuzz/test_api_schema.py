"""Property-based fuzzing of the REST API from its own OpenAPI schema (Schemathesis).

Every generated request, valid or not, must get an answer the schema
documents, never a 5xx, and leave nothing in the API's temp folder.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient

from api.app import create_app
from ctnode.settings import Settings
from tests.fuzz.conftest import count_case

# Schemathesis loads the schema at import (its fixture loader does not support this
# pytest), so the app is built here, in a folder of its own removed after the module.
_ROOT = Path(tempfile.mkdtemp(prefix="ctnode-api-fuzz-"))
_SETTINGS = Settings(node={"work_dir": _ROOT / "var"}, weights={"directory": _ROOT / "w"},
                     api={"max_upload_mb": 5})
APP = create_app(_SETTINGS)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module")
def api() -> Iterator[tuple[Any, Path]]:
    try:
        with TestClient(APP):  # start-up: temp folder, models loaded once
            yield APP, _SETTINGS.node.server_temp_dir()
    finally:
        shutil.rmtree(_ROOT, ignore_errors=True)


@schema.parametrize()
def test_api_answers_every_request_as_documented(case: Any, api: tuple[Any, Path]) -> None:
    count_case(f"api {case.method} {case.path}")
    response = case.call()
    assert response.status_code < 500, response.text[:500]
    case.validate_response(response, excluded_checks=[
        schemathesis.checks.positive_data_acceptance,  # random bytes are not a CT study
    ])
    assert list(api[1].iterdir()) == [], "a request left files in the API's temp folder"
