"""Spool: atomic placement, idempotent duplicates, quarantine, full disk."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from scp_node import Spool, SpoolFullError, UnreadableInstanceError
from scp_node.spool import QUARANTINE, is_uid
from tests.scp_node.conftest import write_ct_series


def _received(tmp_path: Path, src: Path, name: str = "incoming.dcm") -> Path:
    """A copy standing in for pynetdicom's chunked temp file."""
    target = tmp_path / "tmp" / name
    target.parent.mkdir(exist_ok=True)
    shutil.copyfile(src, target)
    return target


@pytest.fixture()
def series(tmp_path: Path) -> list[Path]:
    return write_ct_series(tmp_path / "src", generate_uid(), n=3)


def test_store_places_instance_by_study_series_sop(tmp_path: Path, series: list[Path]) -> None:
    spool = Spool(tmp_path / "spool")
    ds = pydicom.dcmread(series[0])
    received = _received(tmp_path, series[0])
    inst = spool.store(received, ds.SOPInstanceUID)
    expected = (tmp_path / "spool" / ds.StudyInstanceUID / ds.SeriesInstanceUID
                / f"{ds.SOPInstanceUID}.dcm")
    assert inst.path == expected and expected.read_bytes() == series[0].read_bytes()
    assert not received.exists() and not inst.duplicate
    assert (inst.study_uid, inst.series_uid) == (ds.StudyInstanceUID, ds.SeriesInstanceUID)
    assert spool.studies() == [ds.StudyInstanceUID]


def test_duplicate_is_idempotent(tmp_path: Path, series: list[Path]) -> None:
    spool = Spool(tmp_path / "spool")
    uids = [pydicom.dcmread(p).SOPInstanceUID for p in series]
    for path, uid in zip(series, uids, strict=True):
        spool.store(_received(tmp_path, path), uid)
    study_uid = pydicom.dcmread(series[0]).StudyInstanceUID
    before = spool.study(study_uid)
    again = spool.store(_received(tmp_path, series[1]), uids[1])
    after = spool.study(study_uid)
    assert again.duplicate
    assert before == after and after.n_instances == 3
    assert len(list(after.directory.glob("*/*"))) == 3  # no temp files left behind


def test_content_hash_changes_when_the_study_grows(tmp_path: Path, series: list[Path]) -> None:
    spool = Spool(tmp_path / "spool")
    study_uid = pydicom.dcmread(series[0]).StudyInstanceUID
    hashes = []
    for path in series:
        spool.store(_received(tmp_path, path), pydicom.dcmread(path).SOPInstanceUID)
        hashes.append(spool.study(study_uid).content_hash)
    assert len(set(hashes)) == 3
    assert spool.study(generate_uid()).n_instances == 0


def test_unreadable_header_is_quarantined_as_received(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    garbage = tmp_path / "garbage.dcm"
    garbage.write_bytes(b"\x00" * 128 + b"DICM" + os.urandom(300))
    sent = garbage.read_bytes()
    sop = generate_uid()
    with pytest.raises(UnreadableInstanceError, match="kept as"):
        spool.store(garbage, sop)
    kept = tmp_path / "spool" / QUARANTINE / f"{sop}.dcm"
    assert kept.read_bytes() == sent
    assert spool.studies() == []


def test_missing_study_uid_is_quarantined(tmp_path: Path, series: list[Path]) -> None:
    ds = pydicom.dcmread(series[0])
    del ds.StudyInstanceUID
    ds.save_as(tmp_path / "nostudy.dcm")
    spool = Spool(tmp_path / "spool")
    with pytest.raises(UnreadableInstanceError, match="Study/Series"):
        spool.store(tmp_path / "nostudy.dcm", ds.SOPInstanceUID)
    assert (tmp_path / "spool" / QUARANTINE / f"{ds.SOPInstanceUID}.dcm").exists()


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_path_traversal_uids_never_become_paths(tmp_path: Path, series: list[Path]) -> None:
    ds = pydicom.dcmread(series[0])
    ds.SeriesInstanceUID = "../../etc"
    ds.save_as(tmp_path / "evil.dcm")
    spool = Spool(tmp_path / "spool")
    with pytest.raises(UnreadableInstanceError):
        spool.store(tmp_path / "evil.dcm", ds.SOPInstanceUID)
    with pytest.raises(UnreadableInstanceError):
        spool.store(_received(tmp_path, series[1]), "../x")
    assert not (tmp_path / "etc").exists()
    assert [is_uid(u) for u in ("1.2.3", "1..2", "1.2/3", "", "1" * 65)] == [
        True, False, False, False, False]


def test_low_free_space_refuses_without_storing(tmp_path: Path, series: list[Path]) -> None:
    spool = Spool(tmp_path / "spool", min_free_mb=10**12)
    received = _received(tmp_path, series[0])
    with pytest.raises(SpoolFullError, match="below"):
        spool.store(received, pydicom.dcmread(series[0]).SOPInstanceUID)
    assert spool.studies() == [] and received.exists()


def test_disk_full_during_write_is_a_spool_full_error(
    tmp_path: Path, series: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path / "spool")

    def no_space(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("scp_node.spool.os.replace", no_space)
    with pytest.raises(SpoolFullError, match="disk full"):
        spool.store(_received(tmp_path, series[0]), pydicom.dcmread(series[0]).SOPInstanceUID)


def test_other_file_system_falls_back_to_copy_then_rename(
    tmp_path: Path, series: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path / "spool")
    real_replace = os.replace
    calls: list[str] = []

    def cross_device(src: str | Path, dst: str | Path) -> None:
        calls.append(Path(src).name)
        if len(calls) == 1:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_replace(src, dst)

    monkeypatch.setattr("scp_node.spool.os.replace", cross_device)
    received = _received(tmp_path, series[0])
    inst = spool.store(received, pydicom.dcmread(series[0]).SOPInstanceUID)
    assert inst.path.read_bytes() == series[0].read_bytes()
    assert not received.exists() and calls[1].startswith(".incoming-")


def test_remove_study(tmp_path: Path, series: list[Path]) -> None:
    spool = Spool(tmp_path / "spool")
    ds = pydicom.dcmread(series[0])
    spool.store(_received(tmp_path, series[0]), ds.SOPInstanceUID)
    assert spool.newest_mtime(ds.StudyInstanceUID) > 0
    spool.remove_study(ds.StudyInstanceUID)
    assert spool.studies() == [] and spool.newest_mtime(ds.StudyInstanceUID) == 0.0


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names fds through Linux /proc")
def test_placement_is_durable_data_then_rename_then_folder(
    tmp_path: Path, series: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path / "spool")
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        target = os.readlink(f"/proc/self/fd/{fd}")
        events.append(("dir" if os.path.isdir(target) else "file", Path(target).name))
        real_fsync(fd)

    def replace(src: str | Path, dst: str | Path) -> None:
        events.append(("rename", Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr("scp_node.spool.os.fsync", fsync)
    monkeypatch.setattr("scp_node.spool.os.replace", replace)
    ds = pydicom.dcmread(series[0])
    inst = spool.store(_received(tmp_path, series[0]), ds.SOPInstanceUID)
    assert events[0] == ("file", "incoming.dcm")
    assert events[-2:] == [("rename", inst.path.name), ("dir", ds.SeriesInstanceUID)]
    # the study and series folders were new: each is recorded in its parent
    assert ("dir", "spool") in events and ("dir", ds.StudyInstanceUID) in events


def test_removal_spares_a_study_received_lately(tmp_path: Path, series: list[Path]) -> None:
    spool = Spool(tmp_path / "spool")
    ds = pydicom.dcmread(series[0])
    spool.store(_received(tmp_path, series[0]), ds.SOPInstanceUID)
    received_at = spool.newest_mtime(ds.StudyInstanceUID)
    assert not spool.remove_study(ds.StudyInstanceUID, quiet_seconds=60, now=received_at + 30)
    assert spool.studies() == [ds.StudyInstanceUID]
    assert spool.remove_study(ds.StudyInstanceUID, quiet_seconds=60, now=received_at + 61)
    assert spool.studies() == []
