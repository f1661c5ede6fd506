"""NIfTI input within the memory budget: headers are judged before any voxel is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctnode.settings import Settings
from inference.pipeline import run_pipeline
from series_selector.budget import StudyTooLargeError
from series_selector.nifti import load_nifti
from tests.fuzz.hostile import traced_peak, write_nifti_gz_bomb, write_nifti_header_only


def _settings(tmp_path: Path, budget_mb: float) -> Settings:
    return Settings(node={"work_dir": tmp_path / "var"}, weights={"directory": tmp_path / "w"},
                    limits={"study_memory_mb": budget_mb})


def test_header_declaring_a_huge_volume_is_refused_unread(tmp_path: Path) -> None:
    """Issue 15: a 77-byte .nii.gz declaring 700x700x280 voxels (was: allocated, 2.4 GB)."""
    path = write_nifti_header_only(tmp_path / "huge.nii.gz", (700, 700, 280))
    assert path.stat().st_size < 200
    result, peak = traced_peak(lambda: run_pipeline(path, _settings(tmp_path, 1000)))
    assert result.error_code == "study_too_large", result  # type: ignore[attr-defined]
    assert "limits.study_memory_mb" in result.error  # type: ignore[attr-defined]
    assert peak < 50_000_000


def test_gzip_bomb_is_never_inflated(tmp_path: Path) -> None:
    """A 250 MB int16 volume of zeros in a small .nii.gz: refused before its stream is read."""
    path = write_nifti_gz_bomb(tmp_path / "bomb.nii.gz", (500, 500, 500))
    assert path.stat().st_size < 1_000_000
    result, peak = traced_peak(lambda: load_nifti(path, max_bytes=500_000_000))
    assert isinstance(result, StudyTooLargeError)
    assert peak < 20_000_000


def test_volume_within_budget_still_loads(small_nifti: Path) -> None:
    volume = load_nifti(small_nifti, max_bytes=4_000_000_000)
    assert volume.voxels.ndim == 3


@pytest.mark.parametrize("shape", [(10, 10, 10, 3), (10, 10), (0, 10, 10)])
def test_not_a_3d_volume_is_a_volume_error(tmp_path: Path, shape: tuple[int, ...]) -> None:
    from series_selector.errors import VolumeError

    path = write_nifti_header_only(tmp_path / "odd.nii", shape)
    with pytest.raises(VolumeError):
        load_nifti(path, max_bytes=10**9)


def test_degenerate_affine_axis_is_a_volume_error(tmp_path: Path) -> None:
    """Found by fuzzing: an affine column of zeros crashed nibabel's reorientation."""
    import nibabel as nib
    import numpy as np

    from series_selector.errors import VolumeError

    affine = np.array([[1.0, 0, 0, 0], [0, 0, 0, 0], [0, 1e-3, 1.0, 0], [0, 0, 0, 1]])
    path = tmp_path / "odd.nii"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), affine), path)
    with pytest.raises(VolumeError):
        load_nifti(path, max_bytes=10**9)
