"""write_result_objects: files, JSON, determinism, refusals, no half-written files."""

from __future__ import annotations

import json
import threading
import warnings
from pathlib import Path

import pydicom
import pytest

from ctnode.settings import OutputSettings
from sr_writer import MissingSourceError, OutputError, secondary_capture, write_result_objects
from sr_writer.identity import no_phi_warnings
from tests.sr_writer.synthetic import SyntheticStudy, failure, success_with_lesions


def test_files_and_json(study: SyntheticStudy, settings: OutputSettings, tmp_path: Path) -> None:
    result = success_with_lesions(study)
    written = write_result_objects(result, tmp_path, settings)
    assert written.sr_path is not None and written.sr_path.name.startswith("SR_")
    assert [p.name[:7] for p in written.sc_paths] == ["SC_001_", "SC_002_", "SC_003_"]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([written.sr_path.name, *(p.name for p in written.sc_paths),
                            "result.json"])  # nothing partial left
    body = json.loads(written.json_path.read_text(encoding="utf-8"))
    expected = json.loads(json.dumps(result.to_json()))
    assert {k: v for k, v in body.items() if k != "dicom_outputs"} == expected
    uids = {o["sop_instance_uid"] for o in body["dicom_outputs"]}
    assert uids == {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
                    for p in written.dicom_paths}


def test_rerun_gives_same_uids_and_names(study: SyntheticStudy, settings: OutputSettings,
                                         tmp_path: Path) -> None:
    a = write_result_objects(success_with_lesions(study), tmp_path / "a", settings)
    b = write_result_objects(success_with_lesions(study), tmp_path / "b", settings)
    assert [p.name for p in a.dicom_paths] == [p.name for p in b.dicom_paths]
    other_root = OutputSettings(org_uid_root="1.2.3.4")
    c = write_result_objects(success_with_lesions(study), tmp_path / "c", other_root)
    assert all(p.name.split("_")[-1].startswith("1.2.3.4.") for p in c.dicom_paths)


def test_failure_without_sources_is_refused(study: SyntheticStudy, settings: OutputSettings,
                                            tmp_path: Path) -> None:
    with pytest.raises(MissingSourceError):
        write_result_objects(failure(study), tmp_path, settings)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_unreadable_source_is_an_output_error(settings: OutputSettings, study: SyntheticStudy,
                                              tmp_path: Path) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom")
    with pytest.raises(OutputError):
        write_result_objects(failure(study), tmp_path / "out", settings, source_paths=[junk])
    assert not (tmp_path / "out").exists()


def test_error_while_building_leaves_nothing(study: SyntheticStudy, settings: OutputSettings,
                                             tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> list[object]:
        raise RuntimeError("renderer broke")

    monkeypatch.setattr(secondary_capture.render, "render_key_slice", broken)
    with pytest.raises(RuntimeError):
        write_result_objects(success_with_lesions(study), tmp_path, settings)
    assert list(tmp_path.iterdir()) == []


def test_error_while_writing_leaves_nothing(study: SyntheticStudy, settings: OutputSettings,
                                            tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails after creating its temporary file leaves that file behind neither."""
    real = pydicom.dcmwrite
    writes: list[int] = []

    def broken_second(filename: Path, *args: object, **kwargs: object) -> None:
        writes.append(1)
        if len(writes) == 2:
            Path(filename).write_bytes(b"half an object")
            raise OSError("disk full")
        real(filename, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pydicom, "dcmwrite", broken_second)
    with pytest.raises(OSError):
        write_result_objects(success_with_lesions(study), tmp_path, settings)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_source_is_an_output_error(settings: OutputSettings, study: SyntheticStudy,
                                           tmp_path: Path) -> None:
    """A header pydicom fails on with another exception than InvalidDicomError."""
    data = bytearray(study.paths[0].read_bytes())
    data[136:138] = b"\xff\xff"  # the VR of the first file meta element: not a VR
    cut = tmp_path / "corrupt.dcm"
    cut.write_bytes(bytes(data))
    with pytest.raises(Exception) as raised:
        pydicom.dcmread(cut, stop_before_pixels=True)
    assert not isinstance(raised.value, (OSError, pydicom.errors.InvalidDicomError))
    with pytest.raises(OutputError):
        write_result_objects(failure(study), tmp_path / "out", settings, source_paths=[cut])
    assert not (tmp_path / "out").exists()


def test_no_phi_warnings_is_safe_across_threads() -> None:
    """Two threads silencing the warning at once must not leave the filter list changed."""
    before = list(warnings.filters)
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with no_phi_warnings():
            a_in.set()
            b_in.wait(0.5)  # the second thread must not get in meanwhile
        a_out.set()

    def second() -> None:
        a_in.wait(5)
        with no_phi_warnings():
            b_in.set()
            a_out.wait(5)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert warnings.filters == before
