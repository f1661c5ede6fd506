"""The radiologist's view, in a real browser: OHIF v3 opens our SR and SC.

A phantom study with a nodule and an effusion goes through ``ctnode report``;
the CT series, the SR and the SC go into a real Orthanc with DICOMweb;
``ctnode viewer`` serves the built OHIF (npm ``@ohif/app``, pinned in
bootstrap.sh) and proxies DICOMweb on the same origin; headless Debian
Chromium (driven by Playwright) opens the study. Checked from the page: the SR
loads in the SR viewport without an error, its lesions are drawn on the source
CT slice (SVG outline) with their labels, both lesions are listed and reachable,
and the SC series displays. Screenshots go to ``tmp_path`` (and to the folder
named by ``CTNODE_SCREENSHOT_DIR`` when set, e.g. ``docs/images``).

Skips cleanly when Chromium, Playwright, the OHIF build or Orthanc's DICOMweb
plugin is missing (``bash bootstrap.sh test`` installs them).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port, stop_process, wait_for

REPO = Path(__file__).resolve().parents[2]
OHIF_DIST = REPO / ".viewer" / "ohif" / "dist"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Served:
    viewer_url: str
    study_uid: str
    sr_labels: tuple[str, ...]


def _missing() -> str | None:
    from tests.orthanc_plugin.servers import DICOMWEB_PLUGIN, ORTHANC

    if CHROMIUM is None:
        return "chromium is not installed (apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install playwright, see requirements.in)"
    if not (OHIF_DIST / "index.html").is_file():
        return f"OHIF is not installed in {OHIF_DIST} (bash bootstrap.sh test installs it)"
    if not Path(ORTHANC).exists() or not DICOMWEB_PLUGIN.exists():
        return "Orthanc with its DICOMweb plugin is not installed"
    return None


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    why = _missing()
    if why:
        pytest.skip(why)
    from ctnode.commands.report import run_report
    from ctnode.settings import Settings
    from phantom import write_small_study
    from phantom.types import LungSite, Nodule, PleuralEffusion, Side
    from sr_writer import read_back
    from tests.orthanc_plugin.servers import DICOMWEB_PLUGIN, OrthancProcess

    root = tmp_path_factory.mktemp("viewer")
    study = write_small_study(
        root / "study", seed=3, n_slices=56,
        lesions=[Nodule(diameter_mm=16, site=LungSite(Side.RIGHT, 0.5, 0.5, 0.6)),
                 PleuralEffusion(side=Side.LEFT, volume_ml=300)])
    settings = Settings(node={"work_dir": root / "var", "temp_dir": None})
    result, written = run_report(study.root, root / "out", settings)
    assert result.ok, result.error
    labels = tuple(ln.tracking_identifier for ln in read_back(Path(str(written["sr"]))).lesions)
    assert len(labels) >= 2, labels

    config = {
        "Name": "viewer-test", "HttpPort": free_port(), "DicomPort": free_port(),
        "StorageDirectory": str(root / "db"), "IndexDirectory": str(root / "db"),
        "RemoteAccessAllowed": False, "AuthenticationEnabled": True,
        "RegisteredUsers": {"ctnode": "viewer-secret"}, "SyncStorageArea": False,
        "Plugins": [str(DICOMWEB_PLUGIN)], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    orthanc = OrthancProcess("orthanc", root / "orthanc", config,
                             auth=("ctnode", "viewer-secret"))
    orthanc.start()
    viewer: subprocess.Popen[bytes] | None = None
    try:
        files = [*sorted((study.root / "thin").rglob("*.dcm")), Path(str(written["sr"])),
                 *(Path(p) for p in written["sc"])]  # type: ignore[union-attr]
        with orthanc.client() as client:
            for path in files:
                client.post("/instances", content=path.read_bytes()).raise_for_status()
        port = free_port()
        env = {**os.environ, "CTNODE_VIEWER__PORT": str(port),
               "CTNODE_VIEWER__OHIF_DIR": str(OHIF_DIST), "CTNODE_ORTHANC__URL": orthanc.url,
               "CTNODE_ORTHANC__USERNAME": "ctnode", "CTNODE_ORTHANC__PASSWORD": "viewer-secret"}
        log = (root / "viewer.log").open("ab")
        viewer = subprocess.Popen([str(Path(sys.executable).with_name("ctnode")), "viewer"],
                                  env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        log.close()
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert viewer is not None and viewer.poll() is None, (root / "viewer.log").read_text()
            try:
                return httpx.get(url + "/app-config.js", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 30, "ctnode viewer to answer")
        yield Served(url, study.study_uid, labels)
    finally:
        if viewer is not None:
            stop_process(viewer)
        orthanc.stop()


def test_proxy_is_read_only_and_same_origin(served: Served) -> None:
    ok = httpx.get(f"{served.viewer_url}/dicom-web/studies/{served.study_uid}/series", timeout=30)
    assert ok.status_code == 200 and len(ok.json()) == 3  # CT, SR, SC; Orthanc's login hidden
    assert httpx.post(f"{served.viewer_url}/dicom-web/studies", timeout=10).status_code == 405
    config = httpx.get(f"{served.viewer_url}/app-config.js", timeout=10).text
    assert "window.location.origin + '/dicom-web'" in config


def test_ohif_shows_sr_on_the_source_image_and_the_sc(served: Served, tmp_path: Path) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    shots = [tmp_path]
    if os.environ.get("CTNODE_SCREENSHOT_DIR"):
        shots.append(Path(os.environ["CTNODE_SCREENSHOT_DIR"]))
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if "Error Boundary" in m.text
                    or "Something went wrong" in m.text else None)
            page.goto(f"{served.viewer_url}/viewer?StudyInstanceUIDs={served.study_uid}")
            page.locator("[data-cy=study-browser-thumbnail-no-image]").wait_for(timeout=90_000)
            # a fresh browser profile shows OHIF's first-visit tour, then a banner
            for text, wait_ms in (("Skip all", 30_000), ("Confirm and hide", 10_000)):
                try:
                    page.get_by_text(text).click(timeout=wait_ms)
                except PlaywrightTimeout:
                    pass  # not shown by this OHIF build: nothing to dismiss
            thumbs = page.locator("[data-cy^=study-browser-thumbnail]")
            assert thumbs.count() == 3
            assert "AI chest CT result" in page.inner_text("[data-cy=studyBrowser-panel]")

            # the SR: loads in the SR viewport, its first lesion drawn on the CT slice
            page.locator("[data-cy=study-browser-thumbnail-no-image]").dblclick()
            outline = page.locator("svg.svg-layer polyline")
            outline.first.wait_for(timeout=180_000)  # software GL on a loaded CI machine
            labels = page.inner_text("[data-cy=viewport-grid]")
            assert "Probability" in labels and "Volume" in labels, labels
            for folder in shots:
                page.screenshot(path=str(folder / "ohif_sr_viewport.png"))
            # every lesion is drawn on its own slice: scroll the stack, collect what is drawn
            page.locator("[data-cy=viewport-pane]").first.hover()
            seen: set[str] = set(page.evaluate(_DRAWN))
            for step in (-120, 120):  # wheel up through the stack, then down
                for _ in range(60):
                    if len(seen) >= len(served.sr_labels):
                        break
                    page.mouse.wheel(0, step)
                    page.wait_for_timeout(250)
                    seen |= set(page.evaluate(_DRAWN))
            assert len(seen) == len(served.sr_labels), (seen, served.sr_labels)
            for folder in shots:
                page.screenshot(path=str(folder / "ohif_sr_another_lesion.png"))
            assert not errors, errors

            # the SC: the key images display
            page.locator("[data-cy=study-browser-thumbnail]", has_text="key images").dblclick()
            overlay = ""
            for _ in range(60):  # up to ~60 s: the SC decodes (RLE) in software
                page.wait_for_timeout(1000)
                overlay = page.inner_text("[data-cy=viewport-grid]")
                if "AI chest CT key images" in overlay or "I:1" in overlay:
                    break
            assert "AI chest CT key images" in overlay or "I:1" in overlay, overlay
            for folder in shots:
                page.screenshot(path=str(folder / "ohif_sc_viewport.png"))
        finally:
            browser.close()
    assert not errors, errors


_DRAWN = ("() => Array.from(document.querySelectorAll('svg.svg-layer g[data-annotation-uid]'))"
          ".map(g => g.getAttribute('data-annotation-uid'))")
