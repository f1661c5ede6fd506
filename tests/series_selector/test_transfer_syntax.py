"""Every common transfer syntax decodes to the same HU (PS3.5 Section 10 / Annex A)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from ctnode.settings import SelectionSettings
from series_selector import index_path, load_volume, select_series
from series_selector.grouping import group_stacks
from series_selector.pixels import decode_slices
from series_selector.types import HUVolume
from tests.series_selector.synth import SeriesSpec, write_series

LOSSLESS = [ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian,
            RLELossless, JPEGLSLossless, JPEG2000Lossless]


def _volume(folder: Path, study_uid: str, ts: str) -> HUVolume:
    write_series(folder, SeriesSpec(study_uid, n=30, step=5.0, thickness=2.0, transfer_syntax=ts))
    index = index_path(folder)
    assert {h.transfer_syntax_uid for h in index.instances} == {ts}
    return load_volume(index, select_series(index, SelectionSettings()))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    folder = tmp_path_factory.mktemp("ref")
    return _volume(folder, "1.2.826.0.1.3680043.8.498.1", ExplicitVRLittleEndian).voxels


@pytest.mark.parametrize("ts", LOSSLESS, ids=lambda t: t.name)
def test_lossless_round_trip(tmp_path: Path, reference: np.ndarray, ts: str) -> None:
    vol = _volume(tmp_path, "1.2.826.0.1.3680043.8.498.1", ts)
    assert vol.voxels.dtype == np.int16
    assert np.array_equal(vol.voxels, reference)


@pytest.mark.parametrize(("ts", "max_error"), [(JPEGLSNearLossless, 2), (JPEG2000, 120)],
                         ids=["JPEG-LS near-lossless", "JPEG 2000 lossy"])
def test_lossy_round_trip_close(tmp_path: Path, reference: np.ndarray, ts: str,
                                max_error: int) -> None:
    vol = _volume(tmp_path, "1.2.826.0.1.3680043.8.498.1", ts)
    diff = np.abs(vol.voxels.astype(int) - reference.astype(int))
    assert diff.max() <= max_error
    assert diff.mean() < max(max_error / 10, 1.5)


@pytest.mark.skipif(shutil.which("dcmcjpeg") is None, reason="dcmtk dcmcjpeg not installed")
def test_jpeg_lossless_sv1_from_dcmtk(tmp_path: Path, reference: np.ndarray) -> None:
    """JPEG Lossless SV1 (1.2.840.10008.1.2.4.70): pydicom cannot encode it, dcmtk can."""
    src = tmp_path / "src"
    write_series(src, SeriesSpec("1.2.826.0.1.3680043.8.498.1", n=30, step=5.0, thickness=2.0))
    out = tmp_path / "jpeg"
    out.mkdir()
    for p in src.iterdir():
        subprocess.run(["dcmcjpeg", "+e1", str(p), str(out / p.name)], check=True)
    index = index_path(out)
    assert {h.transfer_syntax_uid for h in index.instances} == {"1.2.840.10008.1.2.4.70"}
    vol = load_volume(index, select_series(index, SelectionSettings()))
    assert np.array_equal(vol.voxels, reference)


def _frames(path: Path) -> np.ndarray:
    """Every frame of a file through the selector's own decoding path."""
    index = index_path(path)
    (stack,) = group_stacks(index)
    return np.stack([d.hu for d in decode_slices(stack.slices)])


def _testdata(name: str) -> Path:
    from pydicom.data import get_testdata_file

    try:
        found = get_testdata_file(name)
    except Exception:  # pydicom-data may try to download when the file is missing
        found = None
    if not found or not Path(found).is_file():
        pytest.skip(f"{name} is not available offline (pip install pydicom-data)")
    return Path(found)


@pytest.mark.parametrize(("plain", "encoded"), [
    ("693_UNCR.dcm", "693_J2KR.dcm"),  # real CT, JPEG 2000 lossless
    ("MR_small.dcm", "MR_small_RLE.dcm"),
    ("MR_small.dcm", "MR_small_jp2klossless.dcm"),
    ("MR_small.dcm", "MR_small_jpeg_ls_lossless.dcm"),
    ("MR_small.dcm", "MR_small_bigendian.dcm"),
    ("MR_small.dcm", "MR_small_implicit.dcm"),
    ("emri_small.dcm", "emri_small_RLE.dcm"),  # multi-frame
    ("emri_small.dcm", "emri_small_jpeg_2k_lossless.dcm"),
    ("emri_small.dcm", "emri_small_jpeg_ls_lossless.dcm"),
    ("emri_small.dcm", "emri_small_big_endian.dcm"),
])
def test_reference_files_lossless(plain: str, encoded: str) -> None:
    assert np.array_equal(_frames(_testdata(plain)), _frames(_testdata(encoded)))


def test_reference_ct_jpeg2000_lossy_close() -> None:
    plain = _frames(_testdata("693_UNCR.dcm"))
    lossy = _frames(_testdata("693_J2KI.dcm"))
    assert plain.shape == lossy.shape
    inside = plain > -900  # the file is strongly compressed (about 30 HU median error)
    assert float(np.median(np.abs(plain - lossy)[inside])) < 50.0
    assert float(np.corrcoef(plain[inside], lossy[inside])[0, 1]) > 0.9


@pytest.mark.parametrize("name", ["JPEG-LL.dcm", "JPGExtended.dcm", "image_dfl.dcm",
                                  "JPEG2000.dcm", "CT_small.dcm"])
def test_reference_files_decode(name: str) -> None:
    frames = _frames(_testdata(name))
    assert frames.ndim == 3 and np.isfinite(frames).all() and frames.std() > 0
