"""Hypothesis mutates real DICOM headers; the selector and the pipeline must hold.

Mutations: element values of the attributes the reader uses (wrong VRs,
wrong multiplicities, empty, huge, NaN, control characters), character sets
(empty, unknown, ISO 2022 escapes), transfer syntaxes that do not match the
encoding, deep or malformed sequences, and raw byte damage in the header
(lengths, tags, truncation). The base is a real instance of
``../shared/data`` when present, else a synthetic CT slice.

Properties: ``read_header`` never raises; indexing and selection raise only
our SelectionError; decoding the mutated series (after the memory budget
check, as the pipeline does) raises only SelectionError; ``run_pipeline``
never ends in ``internal_error``.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from ctnode.settings import SelectionSettings, Settings
from inference.pipeline import run_pipeline
from series_selector import index_path, load_volume, select_series
from series_selector.budget import check_dicom_budget
from series_selector.errors import SelectionError
from series_selector.grouping import group_stacks
from series_selector.reader import read_header
from series_selector.types import InstanceHeader, SelectionReport
from tests.conftest import SHARED_DATA
from tests.fuzz.conftest import count_case
from tests.helpers import ct_slice

BUDGET = 1_000_000_000
KEYWORDS = (
    "Rows", "Columns", "BitsAllocated", "BitsStored", "PixelRepresentation", "NumberOfFrames",
    "SamplesPerPixel", "PhotometricInterpretation", "PixelSpacing", "ImagePositionPatient",
    "ImageOrientationPatient", "SliceThickness", "RescaleSlope", "RescaleIntercept",
    "PixelPaddingValue", "SpecificCharacterSet", "SeriesDescription", "ConvolutionKernel",
    "ImageType", "Modality", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID",
    "SOPInstanceUID", "FrameOfReferenceUID", "SeriesNumber", "InstanceNumber",
    "GantryDetectorTilt", "BodyPartExamined", "ContrastBolusAgent", "KVP", "Manufacturer",
)
VRS = ("AE", "AS", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OW", "PN",
       "SH", "SL", "SQ", "SS", "ST", "TM", "UI", "UL", "UN", "US", "UT")
CHARSETS = ("", "ISO_IR 100", "ISO_IR 192", "ISO_IR 999", "GB18030", "ISO 2022 IR 87",
            "\\ISO 2022 IR 87", "ISO 2022 IR 6\\ISO 2022 IR 100", "latin1", "\x00")
SYNTAXES = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
            "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.90",
            "1.2.840.10008.1.2.5", "1.2.3.4", "")

values = st.one_of(
    st.text(max_size=80), st.binary(max_size=80), st.integers(-2**40, 2**40),
    st.floats(allow_nan=True, allow_infinity=True), st.just(""), st.none(),
    st.lists(st.one_of(st.text(max_size=10), st.floats(), st.integers(-9, 2**20)),
             max_size=8),
)


def _base_datasets() -> list[Dataset]:
    """One or two real instances when ``../shared/data`` is present, always a synthetic one."""
    found = []
    for case in ("dcmqi_ct3slice", "lungpetctdx_A0001", "lidc_idri_0001"):
        folder = SHARED_DATA / case
        files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
        for path in files[:40]:
            try:
                ds = pydicom.dcmread(path)
            except Exception:  # noqa: BLE001 - annotations, licences
                continue
            if "PixelData" in ds and int(ds.get("Rows", 0)) * int(ds.get("Columns", 0)) > 0:
                found.append(ds)
                break
    found.append(ct_slice(np.full((16, 16), -1000, np.int16), study_uid=generate_uid(),
                          series_uid=generate_uid(), frame_uid=generate_uid(),
                          instance_number=1, position=[0, 0, 0], pixel_mm=1.0,
                          thickness_mm=1.0))
    return found


BASES = _base_datasets()


@st.composite
def mutated_instances(draw: st.DrawFn) -> tuple[Dataset, list[tuple[int, bytes]], int | None]:
    """(dataset to write, byte patches (offset from the end of the meta, bytes), cut)."""
    ds = copy.deepcopy(draw(st.sampled_from(BASES)))  # writing may touch the dataset
    for _ in range(draw(st.integers(0, 4))):
        keyword = draw(st.sampled_from(KEYWORDS))
        how = draw(st.sampled_from(["value", "vr", "delete"]))
        if how == "delete":
            if keyword in ds:
                del ds[keyword]
        elif how == "vr":
            tag = pydicom.datadict.tag_for_keyword(keyword)
            try:
                ds.add_new(tag, draw(st.sampled_from(VRS)), draw(values))
            except Exception:  # noqa: BLE001 - pydicom refuses some values up front
                pass
        else:
            try:
                setattr(ds, keyword, draw(values))
            except Exception:  # noqa: BLE001 - pydicom refuses some values up front
                pass
    if draw(st.booleans()):
        try:
            ds.SpecificCharacterSet = draw(st.sampled_from(CHARSETS))
            ds.SeriesDescription = draw(st.text(max_size=30))
        except Exception:  # noqa: BLE001 - the element's VR was changed above
            pass
    if draw(st.booleans()):
        ds.file_meta.TransferSyntaxUID = draw(st.sampled_from(SYNTAXES))
    depth = draw(st.integers(0, 3))
    if depth:
        item = Dataset()  # an encodable leaf: pydicom's writer nests each level's error text
        item.add_new(0x00091001, "LO", draw(st.text(max_size=20)))
        for _ in range(depth * 10):  # deep nesting
            outer = Dataset()
            outer.add_new(0x00091002, "SQ", [item])
            item = outer
        ds.add_new(0x00091010, "SQ", [item] * draw(st.integers(1, 3)))
    patches = draw(st.lists(st.tuples(st.integers(0, 600), st.binary(min_size=1, max_size=8)),
                            max_size=4))
    cut = draw(st.one_of(st.none(), st.integers(0, 2000)))
    return ds, patches, cut


def _write(ds: Dataset, patches: list[tuple[int, bytes]], cut: int | None, path: Path) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about every invalid value
            ds.save_as(path, enforce_file_format=False)
    except Exception:  # noqa: BLE001 - a value pydicom cannot encode: not a file
        return False
    data = bytearray(path.read_bytes())
    start = 132 + 12 + int.from_bytes(data[140:144], "little") if data[128:132] == b"DICM" else 0
    for offset, chunk in patches:
        at = min(len(data), start + offset)
        data[at:at + len(chunk)] = chunk
    if cut is not None:
        data = data[: start + cut]
    path.write_bytes(bytes(data))
    return True


def _settings(root: Path) -> Settings:
    return Settings(node={"work_dir": root / "var"}, weights={"directory": root / "w"},
                    limits={"study_memory_mb": BUDGET / 1e6})


@given(mutated_instances())
def test_mutated_header_never_breaks_the_selector(case: tuple[Any, Any, Any]) -> None:
    ds, patches, cut = case
    root = Path(tempfile.mkdtemp(prefix="ctnode-fuzz-dcm-"))
    try:
        (root / "study").mkdir()
        assume(_write(ds, patches, cut, root / "study" / "IM1"))
        count_case("dicom header")
        header = read_header(root / "study" / "IM1")  # never raises
        index = index_path(root / "study")
        try:
            report = select_series(index, SelectionSettings(min_slices=1, min_coverage_mm=0.1))
        except SelectionError:
            return
        if isinstance(header, InstanceHeader):
            for stack in group_stacks(index):
                chosen = SelectionReport(report.study_uid, (), stack.series_uid,
                                         stack.stack_id)
                try:
                    check_dicom_budget(index, chosen, BUDGET)
                    load_volume(index, chosen)
                except SelectionError:
                    pass
        result = run_pipeline(root / "study", _settings(root))
        assert result.error_code != "internal_error", result.error
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("base", range(len(BASES)))
def test_unmutated_bases_are_read(base: int, tmp_path: Path) -> None:
    """The strategies start from readable instances (else the fuzzing proves nothing)."""
    assert _write(BASES[base], [], None, tmp_path / "IM1")
    assert isinstance(read_header(tmp_path / "IM1"), InstanceHeader)
