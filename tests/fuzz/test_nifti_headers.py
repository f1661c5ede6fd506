"""Hypothesis mutates NIfTI headers; loading and the pipeline must refuse cleanly.

Mutated fields: dimensions (huge, zero, negative, 4-D), data type and bits
per voxel, voxel offset, voxel sizes, scaling, qform/sform codes and
matrices (NaN, singular), the magic string, raw bytes anywhere in the 348
bytes, and truncated or gzip'ed files. Properties: ``load_nifti`` raises
only SelectionError (VolumeError, StudyTooLargeError); ``run_pipeline``
never ends in ``internal_error``; memory stays bounded (conftest).
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from ctnode.settings import Settings
from inference.pipeline import run_pipeline
from series_selector.errors import SelectionError
from series_selector.nifti import load_nifti
from tests.fuzz.conftest import count_case

BUDGET = 1_000_000_000
FIELDS = ("dim", "datatype", "bitpix", "vox_offset", "pixdim", "scl_slope", "scl_inter",
          "qform_code", "sform_code", "srow_x", "srow_y", "srow_z", "quatern_b", "magic",
          "sizeof_hdr", "dim_info", "intent_code", "xyzt_units")
numbers = st.one_of(st.integers(-2**31, 2**31 - 1), st.floats(allow_nan=True,
                                                              allow_infinity=True))


def _base() -> bytes:
    data = np.full((12, 10, 8), -1000, np.int16)
    data[3:9, 3:7, 2:6] = 40
    image = nib.Nifti1Image(data, np.diag([-2.0, -2.0, 3.0, 1.0]))
    return image.header.binaryblock + b"\0\0\0\0" + data.tobytes(order="F")


BASE = _base()


@st.composite
def mutated_nifti(draw: st.DrawFn) -> tuple[bytes, bool]:
    header = nib.Nifti1Header.from_fileobj(__import__("io").BytesIO(BASE))
    for _ in range(draw(st.integers(0, 4))):
        field = draw(st.sampled_from(FIELDS))
        current = header[field]
        try:
            if field == "magic":
                header[field] = draw(st.sampled_from([b"n+1", b"ni1", b"n+2", b"", b"xyz"]))
            elif field == "dim":
                header[field] = [draw(st.integers(-2, 9))] + [
                    draw(st.one_of(st.integers(-5, 12), st.integers(0, 32767)))
                    for _ in range(7)]
            elif np.ndim(current):
                header[field] = [draw(numbers) for _ in range(np.size(current))]
            else:
                header[field] = draw(numbers)
        except (ValueError, TypeError, OverflowError):
            pass  # a value the field's type cannot hold
    raw = bytearray(header.binaryblock + BASE[348:])
    for offset, chunk in draw(st.lists(st.tuples(st.integers(0, 360),
                                                 st.binary(min_size=1, max_size=4)),
                                       max_size=3)):
        raw[offset:offset + len(chunk)] = chunk
    cut = draw(st.one_of(st.none(), st.integers(0, len(raw))))
    if cut is not None:
        raw = raw[:cut]
    return bytes(raw), draw(st.booleans())


@given(mutated_nifti())
def test_mutated_nifti_is_refused_cleanly(case: tuple[bytes, bool]) -> None:
    raw, zipped = case
    count_case("nifti header")
    root = Path(tempfile.mkdtemp(prefix="ctnode-fuzz-nii-"))
    try:
        path = root / ("v.nii.gz" if zipped else "v.nii")
        path.write_bytes(gzip.compress(raw) if zipped else raw)
        try:
            load_nifti(path, max_bytes=BUDGET)
        except SelectionError:
            pass
        settings = Settings(node={"work_dir": root / "var"}, weights={"directory": root / "w"},
                            limits={"study_memory_mb": BUDGET / 1e6})
        result: Any = run_pipeline(path, settings)
        assert result.error_code != "internal_error", result.error
    finally:
        shutil.rmtree(root, ignore_errors=True)
