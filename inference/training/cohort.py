"""A labelled phantom cohort for the ML loop: studies on disk and their ``labels.csv``.

Phantoms (``phantom/``) have known ground truth, so the whole loop — features,
train, install, predict, evaluate — can be run and tested without patient data.
Heads trained on phantoms only test the loop: never switch them on for patients.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inference.training.labels import PATHOLOGY, write_labels
from phantom import generate_phantom, small_spec
from phantom.dicom_writer import write_dicom_study
from phantom.presets import RANDOM_FINDINGS, lesion_from_text, random_lesions
from phantom.types import SeriesKind, SeriesSpec

THIN_ONLY = (SeriesSpec("thin", SeriesKind.AXIAL, None, kernel="STANDARD", series_number=2),)


def _save_nifti(ph: Any, path: Path) -> None:
    import nibabel as nib

    sx, sy, sz = ph.spacing
    ox, oy, oz = ph.origin
    # LPS -> RAS flips x and y; the data array is indexed [i, j, k] = [x, y, z].
    affine = np.array([[-sx, 0, 0, -ox], [0, -sy, 0, -oy], [0, 0, sz, oz], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(np.ascontiguousarray(ph.hu.transpose(2, 1, 0)), affine), path)


def write_phantom_cohort(
    out_dir: Path,
    n: int,
    *,
    seed: int = 0,
    p_each: float = 0.3,
    fmt: str = "dicom",
    menu: Sequence[str] | None = None,
    **spec_kw: Any,
) -> tuple[Path, Path]:
    """Write ``n`` random phantoms under ``out_dir/studies`` and ``out_dir/labels.csv``.

    ``fmt``: ``dicom`` (one study folder each, keyed by its Study Instance UID)
    or ``nifti`` (one ``case_NNN.nii.gz`` each, keyed by ``case_NNN``).
    ``menu``: lesion presets (``ctnode phantom --lesions`` names, e.g. ``emphysema``)
    each inserted with probability ``p_each``; default every random finding type.
    Labels are the phantom's truth for every modelled finding; ``pathology`` is 1
    when any finding is present.
    ``spec_kw`` go to ``PhantomSpec`` (e.g. ``matrix=64``). Returns
    (studies folder, labels file).
    """
    if fmt not in ("dicom", "nifti"):
        raise ValueError("fmt must be 'dicom' or 'nifti'")
    studies = out_dir / "studies"
    studies.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows: dict[str, dict[str, int | None]] = {}
    for i in range(n):
        lesions = (random_lesions(rng, p_each) if menu is None else
                   tuple(lesion_from_text(m) for m in menu if rng.random() < p_each))
        ph = generate_phantom(small_spec(lesions, seed=int(rng.integers(0, 2**31 - 1)),
                                         **spec_kw))
        if fmt == "dicom":
            key = write_dicom_study(ph, studies / f"case_{i:03d}", series=THIN_ONLY).study_uid
        else:
            key = f"case_{i:03d}"
            _save_nifti(ph, studies / f"{key}.nii.gz")
        truth = ph.truth["findings"]
        rec: dict[str, int | None] = {
            k: {"present": 1, "absent": 0}.get(truth.get(k, ""), None) for k in RANDOM_FINDINGS}
        rec[PATHOLOGY] = int(any(v == "present" for v in truth.values()))
        rows[key] = rec
    labels = write_labels(out_dir / "labels.csv", rows, (*RANDOM_FINDINGS, PATHOLOGY))
    return studies, labels
