"""Decode pixels of chosen slices into Hounsfield units.

Decoding goes through pydicom's pixel handlers, which use pylibjpeg (JPEG,
JPEG-LS, JPEG 2000, RLE plugins) or python-gdcm for compressed transfer
syntaxes, so every common syntax of PS3.5 Section 10 is covered. HU =
stored value x RescaleSlope + RescaleIntercept (PS3.3 C.11.1.1.2); pixels
marked by PixelPaddingValue (PS3.3 C.7.5.1.1.2) are outside the patient and
become air.
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

logger = logging.getLogger(__name__)

AIR_HU = -1024.0


@dataclass(frozen=True, slots=True)
class DecodedSlice:
    """One slice in HU (float32), with what decoding had to change."""

    hu: np.ndarray
    padded_pixels: int
    clipped_pixels: int
    integral: bool  # slope and intercept are integers: int16 holds the HU exactly


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
    cache: dict[Path, tuple[Dataset, np.ndarray]] = {}
    for s in wanted:
        path = s.header.path
        if path not in cache:
            ds = _read(path)
            cache[path] = (ds, _pixel_frames(ds, path))
        ds, frames = cache[path]
        yield _to_hu(ds, s, frames[s.frame_index if s.frame_index is not None else 0])
        remaining[path] -= 1
        if remaining[path] == 0:
            del cache[path]


def _read(path: Path) -> Dataset:
    try:
        return pydicom.dcmread(path, force=True)
    except Exception as exc:
        raise VolumeError(f"Cannot read {path.name}: {exc}") from exc


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


def _to_hu(ds: Dataset, s: Slice, raw: np.ndarray) -> DecodedSlice:
    slope = (s.rescale_slope if s.rescale_slope is not None
             else float(ds.get("RescaleSlope", 1) or 1))
    intercept = (s.rescale_intercept if s.rescale_intercept is not None
                 else float(ds.get("RescaleIntercept", 0) or 0))
    hu = raw.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    padding = _padding_mask(ds, raw)
    n_padded = int(padding.sum()) if padding is not None else 0
    if padding is not None:
        hu[padding] = AIR_HU
    below = hu < AIR_HU
    n_clipped = int(below.sum())
    if n_clipped:
        hu[below] = AIR_HU  # outside the reconstruction circle; physically nothing is below air
    if str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper() == "MONOCHROME1":
        raise VolumeError("MONOCHROME1 CT images are not supported (inverted grey scale)")
    integral = float(slope).is_integer() and float(intercept).is_integer()
    return DecodedSlice(hu, n_padded, n_clipped, integral)


def _padding_mask(ds: Dataset, raw: np.ndarray) -> np.ndarray | None:
    """Pixels equal to PixelPaddingValue, or within it and PixelPaddingRangeLimit."""
    value = ds.get("PixelPaddingValue")
    if value is None:
        return None
    pad = _as_int(value, ds)
    limit = ds.get("PixelPaddingRangeLimit")
    if limit is None:
        return raw == pad
    lim = _as_int(limit, ds)
    lo, hi = min(pad, lim), max(pad, lim)
    return (raw >= lo) & (raw <= hi)


def _as_int(value: object, ds: Dataset) -> int:
    """Padding values are US or SS by PixelRepresentation; raw bytes may arrive unresolved."""
    if isinstance(value, bytes):
        signed = int(ds.get("PixelRepresentation", 0)) == 1
        return int.from_bytes(value[:2], "little", signed=signed)
    v = int(value)  # type: ignore[call-overload]
    if int(ds.get("PixelRepresentation", 0)) == 1 and v > 32767:
        v -= 65536  # an SS value read as US
    return v
