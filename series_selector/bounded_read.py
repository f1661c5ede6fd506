"""Reading an untrusted DICOM header in bounded memory, deflated transfer syntax included.

pydicom inflates a whole Deflated Explicit VR Little Endian data set
(PS3.5 A.5) into memory on any read, even ``stop_before_pixels``: a 1.5 MB
file of zeros becomes 1.5 GB. Here such a file is inflated as a stream, in
1 MB steps: only the first ``HEADER_WINDOW_BYTES`` are kept (for the header),
the rest is only counted, and an instance that inflates beyond the
per-instance limit is refused before any large buffer exists. Every other
transfer syntax goes to pydicom as before, with large values deferred so a
huge element in a header is never read.

Used by the header index (``reader``) and the SCP's spool, the two places
that read headers of files nobody has vetted yet.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import _read_file_meta_info, read_dataset, read_preamble
from pydicom.tag import BaseTag

DEFLATED = "1.2.840.10008.1.2.1.99"
#: Inflated bytes kept for the header of a deflated instance. Real headers are far
#: smaller: an enhanced CT with 3,000 frames carries about 6 MB of functional groups.
HEADER_WINDOW_BYTES = 16 * 2**20
#: Values longer than this are not read with the header (pydicom reads them on access).
DEFER_BYTES = 2**20
_STEP = 2**20
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})


_ELEMENT_HEADER_BYTES = 12  # tag, VR, reserved, 4-byte length (explicit VR OB/OW)


class InstanceTooLargeError(ValueError):
    """The instance is, or inflates to, more than the per-instance limit."""


@dataclass(frozen=True, slots=True)
class HeaderRead:
    """A header and where in the file its read stopped (for the native pixel layout).

    ``stop_offset`` is None for a deflated file, whose offsets are those of the
    inflated stream; ``element_header`` holds the bytes found at ``stop_offset``.
    """

    dataset: Dataset
    stop_offset: int | None
    element_header: bytes


def _at_pixel_data(tag: BaseTag, vr: str | None, length: int) -> bool:
    return tag in _PIXEL_TAGS


def _meta(fp: BinaryIO) -> tuple[bytes | None, FileMetaDataset, int]:
    """Preamble, file meta information and the offset of the data set, read in place."""
    preamble = read_preamble(fp, True)
    meta = _read_file_meta_info(fp)
    return preamble, meta, fp.tell()


def inflate_bounded(fp: BinaryIO, max_bytes: int, keep: int) -> tuple[bytes, int]:
    """Inflate a raw deflate stream from ``fp``: (its first ``keep`` bytes, total size).

    Raises InstanceTooLargeError as soon as more than ``max_bytes`` came out,
    and ValueError for a corrupt stream. Memory stays at ``keep`` + 2 MB.
    """
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    head = bytearray()
    total = 0
    while data := fp.read(_STEP):
        pending = data
        while True:  # input left, or output still pending from input already taken
            try:
                out = inflater.decompress(pending, _STEP)
            except zlib.error as exc:
                raise ValueError(f"corrupt deflated data set ({exc})") from exc
            pending = inflater.unconsumed_tail
            total += len(out)
            if total > max_bytes:
                raise InstanceTooLargeError(
                    f"the deflated data set inflates to more than {max_bytes / 1e6:.0f} MB")
            if len(head) < keep:
                head += out[: keep - len(head)]
            if not out and not pending:
                break
    return bytes(head), total


def read_header(path: Path, max_instance_bytes: int, *, force: bool = False,
                specific_tags: list[str] | None = None) -> HeaderRead:
    """The header of ``path`` (no pixel data), within ``max_instance_bytes``.

    Raises InstanceTooLargeError for a file, or an inflated data set, above
    the limit; InvalidDicomError (without ``force``) for a file without the
    DICOM prefix; anything else pydicom raises on corrupt input.
    """
    size = path.stat().st_size
    if size > max_instance_bytes:
        raise InstanceTooLargeError(
            f"the file holds {size / 1e6:.0f} MB; at most {max_instance_bytes / 1e6:.0f} MB "
            "per instance are accepted")
    with path.open("rb") as fp:
        preamble, meta, offset = _meta(fp)
        if str(meta.get("TransferSyntaxUID", "")) == DEFLATED:
            ds = _deflated_header(path, fp, preamble, meta, max_instance_bytes)
            return HeaderRead(ds, None, b"")
        fp.seek(0)
        ds = pydicom.dcmread(fp, stop_before_pixels=True, force=force,
                             defer_size=DEFER_BYTES, specific_tags=specific_tags)
        offset = fp.tell()
        return HeaderRead(ds, offset, fp.read(_ELEMENT_HEADER_BYTES))


def _deflated_header(path: Path, fp: BinaryIO, preamble: bytes | None, meta: FileMetaDataset,
                     max_instance_bytes: int) -> FileDataset:
    if preamble is None and "MediaStorageSOPClassUID" not in meta:
        raise InvalidDicomError("no DICOM preamble and no DICOM identifiers")
    head, total = inflate_bounded(fp, max_instance_bytes, HEADER_WINDOW_BYTES)
    buffer = DicomBytesIO(head)
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    dataset = read_dataset(cast(BinaryIO, buffer), False, True, stop_when=_at_pixel_data,
                           defer_size=DEFER_BYTES)
    if total > len(head) and buffer.tell() >= len(head):
        raise InstanceTooLargeError(
            f"the deflated header is larger than {HEADER_WINDOW_BYTES // 2**20} MB")
    ds = FileDataset(str(path), dataset, preamble=preamble, file_meta=meta,
                     is_implicit_VR=False, is_little_endian=True)
    ds.set_original_encoding(False, True, dataset._character_set)
    return ds
