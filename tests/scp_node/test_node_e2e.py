"""End to end: the multi-series phantom study in by dcmtk storescu, SR + SC out at a dcmtk
storescp, every object valid under dciodvfy and the SR readable as TID 1500."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pydicom

from tests.helpers import wait_for
from tests.scp_node.conftest import DcmtkStoreScp, storescu

FINAL = ("done", "failed", "delivered")


def test_phantom_study_to_dcmtk_destination_passes_dciodvfy(
    make_node, dcmtk_pacs: DcmtkStoreScp, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    """The phantom's localizer + 2.5 mm + 5 mm series in, SR + SC out at a dcmtk storescp."""
    from phantom import Nodule, write_small_study
    from sr_writer import read_back

    written = write_small_study(tmp_path / "study", [Nodule(12)])
    n_sent = len(written.all_paths)
    node = make_node(destinations=[("DCMTKPACS", dcmtk_pacs.port)])
    node.start()
    storescu(node.port, tmp_path / "study")
    jobs = wait_for(lambda: [j for j in node.jobs() if j["state"] in FINAL], 240,
                    "the job to finish")
    (job,) = jobs  # type: ignore[misc]
    assert job["state"] == "delivered", job["reason"]
    assert job["study_uid"] == written.study_uid and job["attempts"] == 1
    assert job["n_instances"] == n_sent and len(written.series) == 3
    assert f"delivered to DCMTKPACS@127.0.0.1:{dcmtk_pacs.port}" in str(job["reason"])
    received = sorted(p for p in dcmtk_pacs.out_dir.iterdir() if p.is_file())
    result = json.loads(str(job["result_json"]))
    assert len(received) == len(result["objects"]) >= 2
    by_modality: dict[str, list[Path]] = {}
    for path in received:
        ds = pydicom.dcmread(path)
        assert ds.StudyInstanceUID == written.study_uid
        by_modality.setdefault(str(ds.Modality), []).append(path)
        report = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
        errors = [line for line in (report.stdout + report.stderr).splitlines()
                  if line.startswith("Error")]
        assert errors == [], f"{path.name}: {errors}"
    assert len(by_modality.pop("SR")) == 1 and by_modality  # one SR, and SC image(s)
    sr_path = next(p for p in received if pydicom.dcmread(p).Modality == "SR")
    said = read_back(sr_path)
    assert said.study_instance_uid == written.study_uid
    assert said.processing_succeeded == (result["processing_status"] == "Success")
    log = node.log()
    assert written.study_uid in log
    for secret in _patient_values(written.all_paths[0]):
        assert secret not in log


def _patient_values(path: Path) -> list[str]:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    values = [str(ds.get(k, "")) for k in ("PatientName", "PatientID", "PatientBirthDate")]
    return [v for v in values if len(v) >= 4]
