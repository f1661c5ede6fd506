"""``write_small_study``: a small chest study on disk in about a second, for other tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from phantom.dicom_writer import DEFAULT_SERIES, write_dicom_study
from phantom.generate import generate_phantom
from phantom.types import Lesion, PatientInfo, PhantomSpec, SeriesSpec, WrittenStudy

SMALL_MATRIX = 128
SMALL_FOV_MM = 350.0
SMALL_SLICE_MM = 2.5


def small_spec(lesions: Sequence[Lesion] = (), seed: int = 0, **spec_kw: Any) -> PhantomSpec:
    """A 128 x 128 (2.7 mm) x ~117 slice (2.5 mm) whole-chest specification."""
    kw: dict[str, Any] = {"matrix": SMALL_MATRIX, "fov_mm": SMALL_FOV_MM,
                          "slice_spacing_mm": SMALL_SLICE_MM}
    kw.update(spec_kw)
    return PhantomSpec(seed=seed, lesions=tuple(lesions), **kw)


def write_small_study(
    out_dir: Path | str,
    lesions: Sequence[Lesion] = (),
    seed: int = 0,
    *,
    series: Sequence[SeriesSpec] = DEFAULT_SERIES,
    patient: PatientInfo | None = None,
    transfer_syntax: str = "1.2.840.10008.1.2.1",
    **spec_kw: Any,
) -> WrittenStudy:
    """Generate a small chest phantom and write it (localizer, 2.5 mm and 5 mm series + truth).

    ``spec_kw`` go to ``PhantomSpec`` (e.g. ``contrast=True``, ``n_slices=40``).
    """
    phantom = generate_phantom(small_spec(lesions, seed, **spec_kw))
    return write_dicom_study(phantom, out_dir, series=series, patient=patient,
                             transfer_syntax=transfer_syntax)
