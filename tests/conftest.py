"""Fixtures shared by every test package: where the real data is, fresh settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctnode.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def shared_case(name: str) -> Path:
    """A case of ../shared/data, or skip the test when the folder is absent."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real test data {name} not present (../shared/data is optional)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; skip when absent (a user's fresh clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data (real test studies) is not beside this checkout")
    return SHARED_DATA.resolve()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Default settings with every local path inside the test's temporary folder."""
    return Settings(
        node={"work_dir": tmp_path / "var", "temp_dir": None},
        weights={"directory": tmp_path / "weights"},
    )


def zip_folder(folder: Path, archive: Path) -> Path:
    """ZIP every file under ``folder`` (nested paths kept), as a user would upload it."""
    import zipfile

    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return archive


@pytest.fixture(scope="session")
def small_study(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A small multi-series phantom chest CT study (localizer, thin, thick), no lesions."""
    from phantom import write_small_study

    return write_small_study(tmp_path_factory.mktemp("small_study"), seed=0)


@pytest.fixture(scope="session")
def small_nifti(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small phantom chest volume as NIfTI (RAS affine, HU), as other tools write it."""
    import nibabel as nib
    import numpy as np

    from phantom import PhantomSpec, generate_phantom

    ph = generate_phantom(PhantomSpec(matrix=128, slice_spacing_mm=3.0, seed=3))
    sx, sy, sz = ph.spacing
    ox, oy, oz = ph.origin
    # LPS -> RAS flips x and y; the data array is indexed [i, j, k] = [x, y, z].
    affine = np.array([[-sx, 0, 0, -ox], [0, -sy, 0, -oy], [0, 0, sz, oz], [0, 0, 0, 1]])
    path = tmp_path_factory.mktemp("nifti") / "chest.nii.gz"
    nib.save(nib.Nifti1Image(np.ascontiguousarray(ph.hu.transpose(2, 1, 0)), affine), path)
    return path
