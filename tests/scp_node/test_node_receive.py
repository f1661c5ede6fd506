"""The SCP with real dcmtk clients: echo, access control, spool, full disk, corrupt input.

Each test starts `ctnode scp` as a subprocess on a free loopback port and kills it by PID.
"""

from __future__ import annotations

import os
from pathlib import Path

import pydicom
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.helpers import wait_for
from tests.scp_node.conftest import (
    PATIENT_ID,
    PATIENT_NAME,
    echoscu,
    storescu,
    write_ct_series,
)


def _assert_no_phi(text: str) -> None:
    for secret in (PATIENT_NAME, PATIENT_ID, "Secret", "ACC-SECRET", "19600101"):
        assert secret not in text


def test_echo_and_calling_ae_access_control(make_node) -> None:  # type: ignore[no-untyped-def]
    node = make_node(allowed_calling_ae_titles=["MODALITY"], require_called_ae_title=True)
    node.start()
    assert echoscu(node.port).returncode == 0
    rejected = echoscu(node.port, calling="INTRUDER")
    assert rejected.returncode != 0
    assert "Calling AE Title Not Recognized" in rejected.stdout + rejected.stderr
    wrong_called = echoscu(node.port, called="SOMEONE")
    assert "Called AE Title Not Recognized" in wrong_called.stdout + wrong_called.stderr
    log = node.log()
    assert "association from INTRUDER (127.0.0.1) rejected: calling AE title" in log
    assert echoscu(node.port).returncode == 0  # still serving
    node.stop()  # SIGTERM: a clean shutdown
    assert node.proc is not None and node.proc.returncode == 0
    assert "SCP node stopped" in node.log()


def test_source_address_outside_allowed_networks_is_rejected(make_node) -> None:  # type: ignore[no-untyped-def]
    node = make_node(allowed_source_addresses=["10.0.0.0/8"])
    node.proc = None
    # The node's own readiness probe would be rejected: start it and check the log instead.
    log = node.log_path.open("ab")
    import subprocess
    import sys

    node.proc = subprocess.Popen(
        [sys.executable, "-c", "from ctnode.cli import main; main()", "scp"],
        cwd=node.work_dir, env=node.env, stdout=log, stderr=subprocess.STDOUT,
    )
    log.close()
    wait_for(lambda: "listening on" in node.log(), 60, "the SCP to listen")
    result = echoscu(node.port)
    assert result.returncode != 0
    assert "Association Rejected" in result.stdout + result.stderr
    wait_for(lambda: "source address 127.0.0.1 not allowed" in node.log(), 10, "reject log")


def test_multi_series_study_is_spooled_and_resending_is_idempotent(
    make_node, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    node = make_node(stable_seconds=30)  # no job during this test: spool only
    node.start()
    study = generate_uid()
    files = write_ct_series(tmp_path / "study", study, n=4, series_number=1)
    files += write_ct_series(tmp_path / "study", study, n=3, series_number=2)
    storescu(node.port, tmp_path / "study")
    spooled = sorted((node.spool / study).glob("*/*.dcm"))
    assert len(spooled) == 7 and len({p.parent for p in spooled}) == 2
    for path in files:
        ds = pydicom.dcmread(path)
        target = node.spool / study / ds.SeriesInstanceUID / f"{ds.SOPInstanceUID}.dcm"
        assert pydicom.dcmread(target).PixelData == ds.PixelData
    storescu(node.port, tmp_path / "study")  # the same instances again
    assert sorted((node.spool / study).glob("*/*.dcm")) == spooled
    assert not list((node.spool / study).glob("*/.*"))  # no temp files left
    _assert_no_phi(node.log())


def test_full_disk_answers_out_of_resources(make_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    node = make_node(min_free_mb=10**12)  # more than any disk has free
    node.start()
    write_ct_series(tmp_path / "study", generate_uid(), n=2)
    result = storescu(node.port, tmp_path / "study", check=False)
    out = result.stdout + result.stderr
    assert "0xa700" in out.lower() or "OutOfResources" in out.replace(" ", "")
    assert not list(node.spool.glob("*/*/*.dcm"))
    assert "below the" in node.log()
    assert echoscu(node.port).returncode == 0  # node still up


def test_corrupt_instances_are_kept_reported_and_survived(
    make_node, tmp_path: Path, monkeypatch  # type: ignore[no-untyped-def]
) -> None:
    from pynetdicom import AE, _config

    node = make_node(stable_seconds=1)
    node.start()
    # 1. Pixel data cut short: the header is fine, so it is spooled with its study;
    #    the analysis reports it as unreadable and carries on.
    study = generate_uid()
    files = write_ct_series(tmp_path / "study", study, n=3)
    ds = pydicom.dcmread(files[1])
    ds.PixelData = ds.PixelData[:100]
    ds.save_as(files[1])
    storescu(node.port, tmp_path / "study")
    kept = node.spool / study / ds.SeriesInstanceUID / f"{ds.SOPInstanceUID}.dcm"
    assert len(pydicom.dcmread(kept).PixelData) == 100  # stored as received
    job = wait_for(lambda: [j for j in node.jobs() if j["state"] in ("done", "failed",
                                                                    "delivered")],
                   60, "the job of the corrupt study")[0]  # type: ignore[index]
    assert job["state"] == "done"  # no destination configured: results written
    assert "1 unreadable instance(s) ignored" in job["reason"]
    # 2. A dataset that is not DICOM at all (sent raw by a pynetdicom SCU): refused with
    #    0xC000, the bytes kept in quarantine, the node unharmed.
    garbage_path = tmp_path / "garbage.dcm"
    meta = pydicom.dataset.FileMetaDataset()
    meta.MediaStorageSOPClassUID = pydicom.uid.CTImageStorage
    sop = generate_uid()
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    fds = pydicom.dataset.FileDataset(str(garbage_path), pydicom.Dataset(), file_meta=meta,
                                      preamble=b"\0" * 128)
    fds.save_as(garbage_path, enforce_file_format=False)
    payload = b"\xff\xfe\xfd\xfc" + os.urandom(200)
    with garbage_path.open("ab") as fh:
        fh.write(payload)
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)  # send the bytes raw
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(pydicom.uid.CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", node.port, ae_title="CTNODE")
    assert assoc.is_established
    status = assoc.send_c_store(garbage_path)
    assoc.release()
    assert status.Status == 0xC000
    quarantined = node.spool / "_unreadable" / f"{sop}.dcm"
    assert quarantined.read_bytes().endswith(payload)
    assert f"instance {sop} not accepted: " in node.log()
    assert echoscu(node.port).returncode == 0
    _assert_no_phi(node.log())
