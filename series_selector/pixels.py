"""Decode pixels of chosen slices into Hounsfield units.

Decoding goes through pydicom's pixel handlers, which use pylibjpeg (JPEG,
JPEG-LS, JPEG 2000, RLE plugins) or python-gdcm for compressed transfer
syntaxes, so every common syntax of PS3.5 Section 10 is covered. HU =
stored value x RescaleSlope + RescaleIntercept (PS3.3 C.11.1.1.2); pixels
marked by PixelPaddingValue (PS3.3 C.7.5.1.1.2) are outside the patient and
become air.

Uncompressed little-endian files whose layout indexing recorded
(``InstanceHeader.pixel_layout``) are read straight from their pixel bytes,
without parsing the header a second time; the rest go through pydicom.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID

from series_selector.errors import VolumeError
from series_selector.grouping import Slice
from series_selector.reader import padding_int
from series_selector.types import PixelLayout

logger = logging.getLogger(__name__)

AIR_HU = -1024.0


@dataclass(frozen=True, slots=True)
class DecodedSlice:
    """One slice in HU (float32), with what decoding had to change."""

    hu: np.ndarray
    padded_pixels: int
    clipped_pixels: int
    integral: bool  # slope and intercept are integers: int16 holds the HU exactly


@dataclass(frozen=True, slots=True)
class _HUFacts:
    """The header values that turn stored pixel values into HU."""

    slope: float
    intercept: float
    padding_value: int | None
    padding_range_limit: int | None
    photometric_interpretation: str

    @classmethod
    def of_layout(cls, layout: PixelLayout) -> _HUFacts:
        return cls(layout.rescale_slope, layout.rescale_intercept, layout.padding_value,
                   layout.padding_range_limit, layout.photometric_interpretation)

    @classmethod
    def of_dataset(cls, ds: Dataset) -> _HUFacts:
        signed = int(ds.get("PixelRepresentation", 0)) == 1
        value, limit = ds.get("PixelPaddingValue"), ds.get("PixelPaddingRangeLimit")
        return cls(float(ds.get("RescaleSlope", 1) or 1),
                   float(ds.get("RescaleIntercept", 0) or 0),
                   None if value is None else padding_int(value, signed),
                   None if limit is None else padding_int(limit, signed),
                   str(ds.get("PhotometricInterpretation", "MONOCHROME2")))


def decode_slices(slices: Iterable[Slice]) -> list[DecodedSlice]:
    """HU images of the given slices, in the given order."""
    return list(iter_decoded(slices))


def iter_decoded(slices: Iterable[Slice]) -> Iterator[DecodedSlice]:
    """HU images one by one, in the given order; a multi-frame file is decoded once.

    Yielding keeps memory at one slice beyond the caller's volume array.
    """
    wanted = list(slices)
    remaining: dict[Path, int] = {}
    for s in wanted:
        remaining[s.header.path] = remaining.get(s.header.path, 0) + 1
    cache: dict[Path, tuple[_HUFacts, np.ndarray]] = {}
    for s in wanted:
        path = s.header.path
        if path not in cache:
            layout = s.header.pixel_layout
            if layout is not None:
                cache[path] = (_HUFacts.of_layout(layout), _native_frames(path, layout))
            else:
                ds = _read(path)
                try:
                    facts = _HUFacts.of_dataset(ds)
                except (TypeError, ValueError) as exc:
                    raise VolumeError(f"{path.name} has malformed rescale or padding "
                                      f"attributes: {exc}") from exc
                cache[path] = (facts, _pixel_frames(ds, path))
        facts, frames = cache[path]
        yield _to_hu(facts, s, frames[s.frame_index if s.frame_index is not None else 0])
        remaining[path] -= 1
        if remaining[path] == 0:
            del cache[path]


def _read(path: Path) -> Dataset:
    try:
        return pydicom.dcmread(path, force=True)
    except Exception as exc:
        raise VolumeError(f"Cannot read {path.name}: {exc}") from exc


def _native_frames(path: Path, layout: PixelLayout) -> np.ndarray:
    """All frames as [frame, row, column], read at the offset indexing found.

    Values are what pydicom returns: bits above BitsStored are discarded with
    sign extension for signed data (pydicom's ``correct_unused_bits``).
    """
    kind = "i" if layout.signed else "u"
    dtype = np.dtype(f"<{kind}{layout.bits_allocated // 8}")
    count = layout.frames * layout.rows * layout.columns
    try:
        with path.open("rb") as fp:
            fp.seek(layout.value_offset)
            buf = fp.read(count * dtype.itemsize)
    except OSError as exc:
        raise VolumeError(f"Cannot read {path.name}: {exc}") from exc
    if len(buf) < count * dtype.itemsize:
        raise VolumeError(f"Cannot decode pixel data of {path.name}: the file ends inside "
                          "its pixel data")
    arr = np.frombuffer(buf, dtype=dtype).reshape(layout.frames, layout.rows, layout.columns)
    shift = layout.bits_allocated - layout.bits_stored
    if shift:
        arr = np.right_shift(np.left_shift(arr, shift), shift)
    return arr


def _pixel_frames(ds: Dataset, path: Path) -> np.ndarray:
    """All frames of the instance as [frame, row, column]."""
    ts = UID(str(ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2")))
    if "PixelData" not in ds:
        raise VolumeError(f"{path.name} has no pixel data")
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise VolumeError(f"{path.name} is not a greyscale image (SamplesPerPixel "
                          f"{ds.get('SamplesPerPixel')})")
    try:
        arr = ds.pixel_array
    except Exception as exc:
        raise VolumeError(
            f"Cannot decode pixel data of {path.name} (transfer syntax {ts.name}): {exc}"
        ) from exc
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    return arr


def _to_hu(facts: _HUFacts, s: Slice, raw: np.ndarray) -> DecodedSlice:
    slope = s.rescale_slope if s.rescale_slope is not None else facts.slope
    intercept = s.rescale_intercept if s.rescale_intercept is not None else facts.intercept
    hu = raw.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    padding = _padding_mask(facts, raw)
    n_padded = int(padding.sum()) if padding is not None else 0
    if padding is not None:
        hu[padding] = AIR_HU
    below = hu < AIR_HU
    n_clipped = int(below.sum())
    if n_clipped:
        hu[below] = AIR_HU  # outside the reconstruction circle; physically nothing is below air
    if facts.photometric_interpretation.upper() == "MONOCHROME1":
        raise VolumeError("MONOCHROME1 CT images are not supported (inverted grey scale)")
    integral = float(slope).is_integer() and float(intercept).is_integer()
    return DecodedSlice(hu, n_padded, n_clipped, integral)


def _padding_mask(facts: _HUFacts, raw: np.ndarray) -> np.ndarray | None:
    """Pixels equal to PixelPaddingValue, or within it and PixelPaddingRangeLimit."""
    pad, limit = facts.padding_value, facts.padding_range_limit
    if pad is None:
        return None
    if limit is None:
        return raw == pad
    lo, hi = min(pad, limit), max(pad, limit)
    return (raw >= lo) & (raw <= hi)
