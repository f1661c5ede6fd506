"""Header-only indexing of a folder of DICOM files.

Selection decides from headers, so pixels are never decoded here
(``stop_before_pixels``): a 1,000-file study indexes in seconds, and only the
chosen series is decoded later (``volume.py``). Files without an extension or
without the 128-byte preamble (PS3.10 7.1) are read with ``force``; anything
that still is not a DICOM instance becomes an ``UnreadableFile`` with a reason,
never an exception. Headers are read in bounded memory (``bounded_read``): a
file, or a deflated data set once inflated, above the per-instance limit is
listed as unreadable without being inflated.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from ctnode.settings import LimitsSettings
from series_selector import bounded_read
from series_selector.types import (
    MISSING_UID_PREFIX,
    DicomIndex,
    FrameInfo,
    InstanceHeader,
    PixelLayout,
    UnreadableFile,
)

logger = logging.getLogger(__name__)

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage (PS3.4 Annex F)
_IMPLICIT_VR_LE = "1.2.840.10008.1.2"
_IMAGE_STORAGE_ROOT = "1.2.840.10008.5.1.4.1.1."
_SR_ROOT = "1.2.840.10008.5.1.4.1.1.88."
_NATIVE_SYNTAXES = frozenset({
    "", _IMPLICIT_VR_LE, "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
})  # deflated files are legitimately smaller than their pixel data
_MIN_DICOM_BYTES = 32  # a single element header and more; anything shorter is not DICOM
_LE_NATIVE_SYNTAXES = frozenset({_IMPLICIT_VR_LE, "1.2.840.10008.1.2.1"})
_PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010) little endian
_ELEMENT_HEADER_BYTES = 12  # tag, VR, reserved, 4-byte length (explicit VR OB/OW)
_UNDEFINED_LENGTH = 0xFFFFFFFF


def index_path(root: Path, max_instance_bytes: int | None = None) -> DicomIndex:
    """Index every DICOM instance under ``root`` (a folder, or a single file).

    DICOMDIR files are counted and skipped (they index files, they are not
    images). Unreadable files are listed with a reason, among them files
    above ``max_instance_bytes`` (default: ``LimitsSettings.max_instance_mb``).
    """
    root = Path(root)
    limit = default_max_instance_bytes() if max_instance_bytes is None else max_instance_bytes
    instances: list[InstanceHeader] = []
    unreadable: list[UnreadableFile] = []
    dicomdir = 0
    for path in _walk(root):
        outcome = read_header(path, limit)
        if isinstance(outcome, InstanceHeader):
            instances.append(outcome)
        elif outcome.reason == "DICOMDIR":
            dicomdir += 1
        else:
            unreadable.append(outcome)
    instances.sort(key=lambda h: (h.study_uid, h.series_uid, str(h.path)))
    # no folder name in the log: exported folders are often named after the patient
    logger.info("indexed %d instances, %d unreadable, %d DICOMDIR",
                len(instances), len(unreadable), dicomdir)
    return DicomIndex(tuple(instances), tuple(unreadable), dicomdir)


def _walk(root: Path) -> Iterator[Path]:
    """Files under ``root`` in a stable order; symlinks are not followed."""
    if root.is_file():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                yield path


def default_max_instance_bytes() -> int:
    """The per-instance limit of the default settings, for callers that pass none."""
    return int(LimitsSettings().max_instance_mb * 1e6)


def read_header(path: Path, max_instance_bytes: int | None = None
                ) -> InstanceHeader | UnreadableFile:
    """One file's header, or why it cannot be used. DICOMDIR gives reason 'DICOMDIR'."""
    limit = default_max_instance_bytes() if max_instance_bytes is None else max_instance_bytes
    try:
        if path.stat().st_size < _MIN_DICOM_BYTES:
            return UnreadableFile(path, "file too small to be DICOM")
        ds, pixel_element = _read_dataset(path, limit)
    except bounded_read.InstanceTooLargeError as exc:
        return UnreadableFile(path, f"instance too large: {exc}")
    except InvalidDicomError as exc:
        return UnreadableFile(path, f"not DICOM: {exc}")
    except Exception as exc:  # pydicom raises many types on corrupt input
        return UnreadableFile(path, f"unreadable DICOM header: {type(exc).__name__}: {exc}")
    meta = getattr(ds, "file_meta", None)
    sop_class = str(ds.get("SOPClassUID", "") or (meta.get("MediaStorageSOPClassUID", "")
                                                  if meta is not None else ""))
    if sop_class == DICOMDIR_SOP_CLASS or path.name.upper() == "DICOMDIR":
        return UnreadableFile(path, "DICOMDIR")
    problem = _image_problem(path, ds, sop_class)
    if problem:
        return UnreadableFile(path, problem)
    try:
        return header_from_dataset(path, ds, pixel_layout(ds, *pixel_element))
    except (ValueError, TypeError) as exc:
        return UnreadableFile(path, f"incomplete DICOM header: {exc}")
    except Exception as exc:  # malformed values surface lazily in pydicom
        return UnreadableFile(path, f"malformed DICOM header: {type(exc).__name__}: {exc}")


def _image_problem(path: Path, ds: Dataset, sop_class: str) -> str:
    """Why an image instance cannot be decoded, judged from its header and size.

    Catches files cut short in transfer: a header that stops before the image
    attributes, or (for native syntaxes) a file smaller than its pixel data.
    """
    if not sop_class.startswith(_IMAGE_STORAGE_ROOT) or sop_class.startswith(_SR_ROOT):
        return ""
    rows, cols = _int(ds.get("Rows")), _int(ds.get("Columns"))
    bits = _int(ds.get("BitsAllocated"))
    if not rows or not cols or not bits:
        return "truncated or incomplete image header (no Rows/Columns/BitsAllocated)"
    meta = getattr(ds, "file_meta", None)
    ts = _str(meta.get("TransferSyntaxUID", "")) if meta is not None else _IMPLICIT_VR_LE
    if ts in _NATIVE_SYNTAXES:
        frames = _int(ds.get("NumberOfFrames")) or 1
        samples = _int(ds.get("SamplesPerPixel")) or 1
        needed = rows * cols * frames * samples * bits // 8
        size = path.stat().st_size
        if size < needed:
            return f"truncated file: {size} bytes, but its pixel data alone needs {needed}"
    return ""


def _read_dataset(path: Path, max_instance_bytes: int) -> tuple[Dataset, tuple[int, bytes]]:
    """Read the header; fall back to ``force`` for files without preamble.

    A forced read of a random file often "succeeds" with nonsense, so it only
    counts when it yields the UIDs an instance must have. Also returns where the
    read stopped and the element header found there (pydicom rewinds to the
    pixel data tag), for ``pixel_layout``. A deflated file reports no position
    (its offsets are those of the inflated stream).
    """
    try:
        read = bounded_read.read_header(path, max_instance_bytes)
    except InvalidDicomError:
        read = bounded_read.read_header(path, max_instance_bytes, force=True)
        ds = read.dataset
        has_uid = ("SOPInstanceUID" in ds or "StudyInstanceUID" in ds
                   or "SeriesInstanceUID" in ds)
        meta = getattr(ds, "file_meta", None)
        has_meta = meta is not None and "MediaStorageSOPClassUID" in meta
        if not (has_uid or has_meta):
            raise InvalidDicomError("no DICOM preamble and no DICOM identifiers") from None
    if read.stop_offset is None:
        return read.dataset, (0, b"")
    return read.dataset, (read.stop_offset, read.element_header)


def pixel_layout(ds: Dataset, offset: int, element_header: bytes) -> PixelLayout | None:
    """Where the native pixel data of ``ds`` lies in its file, or None to decode via pydicom.

    ``element_header`` holds the bytes at ``offset``, where the header read
    stopped. Only little-endian native syntaxes (not deflated: there the
    offsets are of the inflated stream) and plain greyscale images qualify;
    anything unusual returns None, never raises, so the file is still indexed
    and decoded the slower way.
    """
    try:
        meta = getattr(ds, "file_meta", None)
        ts = _str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
        is_implicit, is_little = ds.original_encoding
        if ts not in _LE_NATIVE_SYNTAXES or not is_little or is_implicit is None:
            return None
        if len(element_header) < _ELEMENT_HEADER_BYTES or element_header[:4] != _PIXEL_DATA_TAG:
            return None
        if is_implicit:
            length, value_offset = int.from_bytes(element_header[4:8], "little"), offset + 8
        elif element_header[4:6] in (b"OW", b"OB") and element_header[6:8] == b"\0\0":
            length, value_offset = int.from_bytes(element_header[8:12], "little"), offset + 12
        else:
            return None
        samples = _int(ds.get("SamplesPerPixel")) or 1
        bits = _int(ds.get("BitsAllocated"))
        representation = _int(ds.get("PixelRepresentation"))
        if length == _UNDEFINED_LENGTH or samples != 1 or representation not in (0, 1):
            return None  # encapsulated despite the syntax, colour, or a malformed header
        signed = representation == 1
        padding, limit = ds.get("PixelPaddingValue"), ds.get("PixelPaddingRangeLimit")
        return PixelLayout(
            value_offset=value_offset,
            value_length=length,
            rows=_int(ds.get("Rows")) or 0,
            columns=_int(ds.get("Columns")) or 0,
            frames=_int(ds.get("NumberOfFrames")) or 1,
            bits_allocated=bits or 0,
            bits_stored=_int(ds.get("BitsStored")) or bits or 0,
            signed=signed,
            photometric_interpretation=str(ds.get("PhotometricInterpretation", "MONOCHROME2")),
            rescale_slope=float(ds.get("RescaleSlope", 1) or 1),
            rescale_intercept=float(ds.get("RescaleIntercept", 0) or 0),
            padding_value=None if padding is None else padding_int(padding, signed),
            padding_range_limit=None if limit is None else padding_int(limit, signed),
        )
    except Exception:  # noqa: BLE001 - any doubt about the layout means: let pydicom decode
        return None


def padding_int(value: object, signed: bool) -> int:
    """A PixelPaddingValue as an int: US or SS by PixelRepresentation, maybe unresolved bytes."""
    if isinstance(value, bytes):
        return int.from_bytes(value[:2], "little", signed=signed)
    v = int(value)  # type: ignore[call-overload]
    if signed and v > 32767:
        v -= 65536  # an SS value read as US
    return v


def header_from_dataset(path: Path, ds: Dataset,
                        layout: PixelLayout | None = None) -> InstanceHeader:
    """The facts selection needs, from a dataset read without pixels."""
    meta = getattr(ds, "file_meta", None)
    meta_get = meta.get if meta is not None else (lambda *_: "")
    sop_class = _str(ds.get("SOPClassUID")) or _str(meta_get("MediaStorageSOPClassUID", ""))
    sop_uid = _str(ds.get("SOPInstanceUID")) or _str(meta_get("MediaStorageSOPInstanceUID", ""))
    ts = _str(meta_get("TransferSyntaxUID", "")) or _IMPLICIT_VR_LE
    n_frames = _int(ds.get("NumberOfFrames")) or 1
    frames = _frames(ds, n_frames) if "PerFrameFunctionalGroupsSequence" in ds else ()
    shared = _shared_frame(ds)
    first = frames[0] if frames else None
    study_uid = _str(ds.get("StudyInstanceUID"))
    series_uid = _str(ds.get("SeriesInstanceUID"))
    missing = tuple(name for name, v in (("StudyInstanceUID", study_uid),
                                         ("SeriesInstanceUID", series_uid),
                                         ("SOPInstanceUID", sop_uid)) if not v)
    if missing:
        study_uid, series_uid, sop_uid = _stand_ins(ds, path, study_uid, series_uid, sop_uid)
    return InstanceHeader(
        path=path,
        study_uid=study_uid,
        series_uid=series_uid,
        sop_instance_uid=sop_uid,
        sop_class_uid=sop_class,
        modality=_str(ds.get("Modality")).upper(),
        transfer_syntax_uid=ts,
        image_type=tuple(_str(v).upper() for v in _multi(ds.get("ImageType"))),
        series_description=_str(ds.get("SeriesDescription")),
        series_number=_int(ds.get("SeriesNumber")),
        instance_number=_int(ds.get("InstanceNumber")),
        acquisition_number=_int(ds.get("AcquisitionNumber")),
        body_part_examined=_str(ds.get("BodyPartExamined")).upper(),
        convolution_kernel=_kernel(ds),
        contrast_agent=_contrast(ds),
        kvp=_float(ds.get("KVP")),
        manufacturer=_str(ds.get("Manufacturer")),
        image_position=(first.image_position if first
                        else _floats(ds.get("ImagePositionPatient"), 3)),
        image_orientation=(first.image_orientation if first
                           else _floats(ds.get("ImageOrientationPatient"), 6)),
        pixel_spacing=first.pixel_spacing if first else (
            shared.pixel_spacing if shared else _positive(_floats(ds.get("PixelSpacing"), 2))),
        slice_thickness=(first.slice_thickness if first
                         else _positive(_float(ds.get("SliceThickness")))),
        rows=_int(ds.get("Rows")),
        columns=_int(ds.get("Columns")),
        number_of_frames=n_frames,
        gantry_tilt=_float(ds.get("GantryDetectorTilt")) or 0.0,
        frame_of_reference_uid=_str(ds.get("FrameOfReferenceUID")),
        frames=frames,
        missing_uids=missing,
        pixel_layout=layout,
    )


def _stand_ins(ds: Dataset, path: Path, study: str, series: str, sop: str) -> tuple[str, str, str]:
    """Stand-ins for UIDs a de-identifier emptied, so the files can still be judged.

    Files without a StudyInstanceUID are taken as one study; without a
    SeriesInstanceUID they are grouped by frame of reference, series number and
    description, which a scanner keeps constant within a series. The
    stand-ins start with MISSING_UID_PREFIX and never reach an output.
    """
    if not study:
        study = MISSING_UID_PREFIX + "study"
    if not series:
        key = "|".join(_str(ds.get(k)) for k in ("FrameOfReferenceUID", "SeriesNumber",
                                                  "SeriesDescription", "Modality"))
        series = MISSING_UID_PREFIX + "series:" + key
    if not sop:
        sop = MISSING_UID_PREFIX + "sop:" + path.name
    return study, series, sop


def _item(seq_owner: Dataset | None, keyword: str) -> Dataset | None:
    """First item of a functional-group macro sequence, or None."""
    if seq_owner is None:
        return None
    seq = seq_owner.get(keyword)
    if not seq:
        return None
    return seq[0]


def _shared_frame(ds: Dataset) -> FrameInfo | None:
    groups = ds.get("SharedFunctionalGroupsSequence")
    if not groups:
        return None
    return _frame_from_groups(groups[0], None)


def _frames(ds: Dataset, n_frames: int) -> tuple[FrameInfo, ...]:
    """Per-frame geometry of an Enhanced CT instance (PS3.3 C.7.6.16)."""
    shared_groups = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_groups[0] if shared_groups else None
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    return tuple(_frame_from_groups(item, shared) for item in list(per_frame)[:n_frames])


def _frame_from_groups(frame: Dataset, shared: Dataset | None) -> FrameInfo:
    def lookup(macro: str) -> Dataset | None:
        return _item(frame, macro) or _item(shared, macro)

    position = lookup("PlanePositionSequence")
    orientation = lookup("PlaneOrientationSequence")
    measures = lookup("PixelMeasuresSequence")
    transform = lookup("PixelValueTransformationSequence")
    return FrameInfo(
        image_position=_floats(position.get("ImagePositionPatient"), 3) if position else None,
        image_orientation=(_floats(orientation.get("ImageOrientationPatient"), 6)
                           if orientation else None),
        pixel_spacing=_positive(_floats(measures.get("PixelSpacing"), 2)) if measures else None,
        slice_thickness=_positive(_float(measures.get("SliceThickness"))) if measures else None,
        rescale_slope=(_float(transform.get("RescaleSlope")) if transform else None) or 1.0,
        rescale_intercept=(_float(transform.get("RescaleIntercept")) if transform else None)
        or 0.0,
    )


def _kernel(ds: Dataset) -> str:
    value = _multi(ds.get("ConvolutionKernel"))
    shared = _item(ds, "SharedFunctionalGroupsSequence")
    for macro in ("CTReconstructionSequence", "UnassignedSharedConvertedAttributesSequence"):
        if value:
            break
        item = _item(shared, macro)  # Enhanced CT / Legacy Converted Enhanced CT
        value = _multi(item.get("ConvolutionKernel")) if item else []
    return _str(value[0]) if value else ""


def _contrast(ds: Dataset) -> str:
    agent = _str(ds.get("ContrastBolusAgent"))
    if agent:
        return agent
    usage = ds.get("ContrastBolusUsageSequence")  # Enhanced CT (PS3.3 C.7.6.4b)
    if usage:
        return "APPLIED"
    return ""


def _multi(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, (str, bytes)):
        return [value]
    try:
        return list(value)
    except TypeError:
        return [value]


def _str(value: Any) -> str:
    if value is None:
        return ""
    return str(value).strip()


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        if isinstance(value, (list, tuple)) or hasattr(value, "__len__") and not isinstance(
            value, str
        ):
            value = list(value)[0]
        return float(value)
    except (TypeError, ValueError, IndexError):
        return None


def _floats(value: Any, n: int) -> Any:
    """A tuple of ``n`` finite floats, or None when missing or malformed."""
    items = _multi(value)
    if len(items) != n:
        return None
    try:
        floats = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        return None
    return floats if all(math.isfinite(v) for v in floats) else None


def _positive(value: Any) -> Any:
    """``value`` (a float or a tuple of them) when every part is > 0, else None.

    A spacing or thickness of 0, below 0 or NaN is a header fault (found by
    fuzzing: it reached the volume as a negative voxel size); it is treated
    as missing, which the rules report.
    """
    if value is None:
        return None
    parts = value if isinstance(value, tuple) else (value,)
    return value if all(math.isfinite(v) and v > 0 for v in parts) else None
