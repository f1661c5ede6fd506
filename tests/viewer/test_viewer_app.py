"""``ctnode.viewer``: the same-origin OHIF server, against a fake Orthanc (no browser)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from ctnode.settings import OrthancSettings, ViewerSettings
from ctnode.viewer import OHIF_VERSION, ViewerConfigError, build_viewer_app

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def dist(tmp_path: Path) -> Path:
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "index.html").write_text("<html>ohif</html>")
    (tmp_path / "dist" / "app.bundle.js").write_text("console.log(1)")
    return tmp_path / "dist"


def _fake_orthanc(seen: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.headers.get("authorization") is None:
            return httpx.Response(401)
        return httpx.Response(200, json=[{"0020000D": {"vr": "UI", "Value": ["1.2.3"]}}],
                              headers={"content-type": "application/dicom+json"})
    return httpx.MockTransport(handle)


def test_serves_app_config_and_proxies_read_only(dist: Path) -> None:
    seen: list[httpx.Request] = []
    app = build_viewer_app(
        ViewerSettings(ohif_dir=dist),
        OrthancSettings(url="http://orthanc.test:8042", password="secret"),
        transport=_fake_orthanc(seen))
    with TestClient(app) as client:
        assert "ohif" in client.get("/viewer?StudyInstanceUIDs=1.2.3").text  # client-side route
        assert client.get("/app.bundle.js").text == "console.log(1)"
        config = client.get("/app-config.js").text
        assert "defaultDataSourceName: 'ctnode'" in config and "secret" not in config
        reply = client.get("/dicom-web/studies", params={"PatientID": "X"})
        assert reply.status_code == 200 and reply.json()[0]["0020000D"]["Value"] == ["1.2.3"]
        assert str(seen[-1].url) == "http://orthanc.test:8042/dicom-web/studies?PatientID=X"
        assert seen[-1].headers["authorization"].startswith("Basic ")  # added by the node
        assert client.post("/dicom-web/studies", content=b"x").status_code == 405
        assert client.delete("/dicom-web/studies/1.2.3").status_code == 405
        assert len(seen) == 1  # nothing but the GET reached Orthanc
        assert client.get("/../../etc/passwd").text == "<html>ohif</html>"


def test_login_required_off_loopback(dist: Path) -> None:
    with pytest.raises(ViewerConfigError, match="needs viewer.username"):
        build_viewer_app(ViewerSettings(ohif_dir=dist, host="0.0.0.0"), OrthancSettings())
    app = build_viewer_app(
        ViewerSettings(ohif_dir=dist, host="0.0.0.0", username="rad", password="pw"),
        OrthancSettings(), transport=_fake_orthanc([]))
    with TestClient(app) as client:
        assert client.get("/").status_code == 401
        assert client.get("/", auth=("rad", "wrong")).status_code == 401
        assert client.get("/", auth=("rad", "pw")).status_code == 200


def test_no_build_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ViewerConfigError, match="no built OHIF"):
        build_viewer_app(ViewerSettings(ohif_dir=tmp_path), OrthancSettings())


def test_bootstrap_installs_the_version_the_code_names() -> None:
    text = (REPO / "bootstrap.sh").read_text()
    match = re.search(r'^OHIF_VERSION="([^"]+)"', text, re.M)
    assert match is not None and match.group(1) == OHIF_VERSION
    assert ".viewer/" in (REPO / ".gitignore").read_text().splitlines()
