"""The REST contract of the seed service: every key and type, Success and Failure.

These tests drive the real app in-process (FastAPI's TestClient) with the real
pipeline and the default model; one test also starts the real server.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ctnode.settings import Settings
from inference.findings import FINDINGS
from tests.conftest import shared_case
from tests.helpers import zip_folder

SEED_KEYS = {
    "study_uid", "series_uid", "probability_of_pathology", "pathology", "top_pathologies",
    "processing_status", "time_of_processing",
}
DISPLAY_NAMES = {f.display_name for f in FINDINGS.values()}


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def _post(client: TestClient, route: str, name: str, data: bytes,
          content_type: str = "application/zip", **kw: Any) -> Any:
    return client.post(route, files={"file": (name, data, content_type)}, **kw)


def assert_failure_shape(body: dict[str, Any], code: str | None = None) -> None:
    assert SEED_KEYS <= body.keys()
    assert body["processing_status"] == "Failure"
    assert body["probability_of_pathology"] is None
    assert body["pathology"] is None
    assert body["most_dangerous_pathology_type"] is None
    assert isinstance(body["study_uid"], str) and isinstance(body["series_uid"], str)
    assert isinstance(body["time_of_processing"], float)
    assert isinstance(body["error"], str) and len(body["error"]) > 10
    if code is not None:
        assert body["error_code"] == code, body["error"]


def assert_success_shape(body: dict[str, Any], *, dicom: bool = True) -> None:
    assert SEED_KEYS <= body.keys()
    assert body["processing_status"] == "Success", body.get("error")
    assert isinstance(body["probability_of_pathology"], float)
    assert 0.0 <= body["probability_of_pathology"] <= 1.0
    assert body["pathology"] in (0, 1)
    assert isinstance(body["top_pathologies"], list) and body["top_pathologies"]
    assert set(body["top_pathologies"]) <= DISPLAY_NAMES
    assert isinstance(body["time_of_processing"], float) and body["time_of_processing"] > 0
    assert isinstance(body["study_uid"], str) and isinstance(body["series_uid"], str)
    if dicom:  # a NIfTI volume has no DICOM UIDs: they stay ""
        assert body["study_uid"] and body["series_uid"]
    assert "error" not in body
    assert set(body["findings"]) == set(FINDINGS)


def test_health_says_what_is_installed(client: TestClient) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "healthy"
    models = {m["name"]: m for m in body["models"]}
    assert models["chest_quant"]["weights_installed"] is True
    assert "Emphysema" in body["detects"]
    assert set(body["detects"]) | set(body["does_not_assess"]) == DISPLAY_NAMES
    assert "not a diagnosis" in body["disclaimer"]


def test_predict_success_on_phantom(client: TestClient, small_study: Any, tmp_path: Path) -> None:
    data = zip_folder(small_study.root, tmp_path / "study.zip").read_bytes()
    r = _post(client, "/predict", "study.zip", data)
    assert r.status_code == 200, r.text
    body = r.json()
    assert_success_shape(body)
    assert body["study_uid"] == small_study.study_uid
    assert body["series_selection"]["chosen_series_uid"] == body["series_uid"]
    assert r.headers["x-request-id"] == body["request_id"]
    # The ranking is by probability: the first listed finding is the most probable.
    probs = {v["display_name"]: v["probability"] for v in body["findings"].values()}
    top = [probs[name] for name in body["top_pathologies"]]
    assert top == sorted(top, reverse=True)


def test_predict_nifti_success(client: TestClient, small_nifti: Path) -> None:
    r = _post(client, "/predict_nifti", small_nifti.name, small_nifti.read_bytes(),
              "application/gzip")
    assert r.status_code == 200, r.text
    assert_success_shape(r.json(), dicom=False)


def test_not_a_zip(client: TestClient) -> None:
    r = _post(client, "/predict", "study.zip", b"hello, not a zip at all")
    assert r.status_code == 415
    assert_failure_shape(r.json(), "unsupported_media_type")


def test_empty_zip(client: TestClient) -> None:
    buf = io.BytesIO()
    zipfile.ZipFile(buf, "w").close()
    r = _post(client, "/predict", "empty.zip", buf.getvalue())
    assert r.status_code == 400
    assert_failure_shape(r.json(), "unsafe_archive")


def test_zip_without_dicom(client: TestClient) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("notes.txt", "no images here")
        zf.writestr("scan.jpg", b"\xff\xd8\xff\xe0 not dicom")
    r = _post(client, "/predict", "x.zip", buf.getvalue())
    assert r.status_code == 422
    assert_failure_shape(r.json(), "no_dicom")


def test_path_traversal_entry(client: TestClient, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../../escape.dcm", b"x")
    r = _post(client, "/predict", "x.zip", buf.getvalue())
    assert r.status_code == 400
    assert_failure_shape(r.json(), "unsafe_archive")
    assert "leave the archive" in r.json()["error"]


def test_zip_bomb(client: TestClient) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb.dcm", b"\0" * 50_000_000)
    r = _post(client, "/predict", "bomb.zip", buf.getvalue())
    assert r.status_code == 400
    assert_failure_shape(r.json(), "unsafe_archive")
    assert "ZIP bomb" in r.json()["error"]


def test_truncated_dicom(client: TestClient, small_study: Any) -> None:
    first = small_study.series[-1].paths[0]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("IM0001", first.read_bytes()[:700])
    r = _post(client, "/predict", "t.zip", buf.getvalue())
    assert r.status_code == 422
    assert_failure_shape(r.json())


def test_wrong_content_type_and_missing_field(client: TestClient) -> None:
    r = client.post("/predict", json={"file": "study.zip"})
    assert r.status_code == 422
    assert_failure_shape(r.json(), "bad_request")
    r = client.post("/predict", files={"upload": ("a.zip", b"PK", "application/zip")})
    assert r.status_code == 422
    assert "'file'" in r.json()["error"]


def test_nifti_route_refuses_a_zip(client: TestClient) -> None:
    r = _post(client, "/predict_nifti", "a.nii.gz", b"PK\x03\x04 zip pretending", "x/y")
    assert r.status_code == 415
    assert_failure_shape(r.json(), "unsupported_media_type")


def test_upload_size_limit(settings: Settings) -> None:
    settings.api.max_upload_mb = 0.001
    with TestClient(create_app(settings)) as c:
        r = _post(c, "/predict", "big.zip", b"PK\x03\x04" + b"\0" * 5000)
    assert r.status_code == 413
    assert_failure_shape(r.json(), "upload_too_large")


def test_request_id_in_body_is_the_sanitised_one(client: TestClient) -> None:
    r = _post(client, "/predict", "a.zip", b"not a zip", headers={"X-Request-ID": "a b;c"})
    assert r.json()["request_id"] == r.headers["x-request-id"] != "a b;c"
    assert len(r.headers.get_list("x-request-id")) == 1
    r = _post(client, "/predict", "a.zip", b"not a zip", headers={"X-Request-ID": "ok-42"})
    assert r.json()["request_id"] == r.headers["x-request-id"] == "ok-42"


def test_node_storage_fault_is_a_seed_shaped_500(settings: Settings, tmp_path: Path) -> None:
    """No temporary folder to receive into: the node's fault, answered in the seed's shape."""
    (tmp_path / "gone").write_text("a file where the temporary folder should be")
    settings.node.temp_dir = tmp_path / "gone"
    with TestClient(create_app(settings)) as c:
        r = _post(c, "/predict", "a.zip", b"PK\x03\x04" + b"\0" * 100)
    assert r.status_code == 500
    assert_failure_shape(r.json(), "internal_error")
    assert "gone" not in r.json()["error"]


def test_api_key_required_when_configured(settings: Settings) -> None:
    settings.api.api_key = "s3cret"  # type: ignore[assignment]
    with TestClient(create_app(settings)) as c:
        assert c.get("/health").status_code == 200  # monitoring needs no key
        r = _post(c, "/predict", "a.zip", b"not a zip")
        assert r.status_code == 401
        assert_failure_shape(r.json(), "http_401")
        r = _post(c, "/predict", "a.zip", b"not a zip", headers={"X-API-Key": "wrong"})
        assert r.status_code == 401
        r = _post(c, "/predict", "a.zip", b"not a zip", headers={"X-API-Key": "s3cret"})
        assert r.status_code == 415  # past authentication, refused for its content


def test_temp_files_are_removed(settings: Settings, small_study: Any, tmp_path: Path) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    settings.node.temp_dir = temp
    data = zip_folder(small_study.root, tmp_path / "s.zip").read_bytes()
    with TestClient(create_app(settings)) as c:
        assert _post(c, "/predict", "s.zip", data).status_code == 200
        assert _post(c, "/predict", "x.zip", b"junk").status_code == 415
    assert list(temp.iterdir()) == []


def test_openapi_documents_the_routes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/health", "/predict", "/predict_nifti"} <= set(spec["paths"])
    predict = spec["paths"]["/predict"]["post"]
    assert {"200", "400", "413", "415", "422", "500"} <= set(predict["responses"])
    assert client.get("/docs").status_code == 200


@pytest.mark.real_data
def test_real_upper_abdomen_series_is_refused(client: TestClient, tmp_path: Path) -> None:
    case = shared_case("ts_upper_abdomen_dicom")
    data = zip_folder(case, tmp_path / "abd.zip").read_bytes()
    r = _post(client, "/predict", "abd.zip", data)
    assert r.status_code == 422
    body = r.json()
    assert_failure_shape(body, "no_usable_series")
    # These de-identified files carry no StudyInstanceUID: "" rather than an invented one.
    assert "38 mm" in body["error"] and "lung" in body["error"]


@pytest.mark.real_data
def test_real_abdomen_nifti_is_not_chest(client: TestClient) -> None:
    case = shared_case("ts_abdomen_pelvis.nii.gz")
    r = _post(client, "/predict_nifti", case.name, case.read_bytes(), "application/gzip")
    assert r.status_code == 422
    body = r.json()
    assert_failure_shape(body, "not_chest_ct")
    assert "not a chest CT" in body["error"]
