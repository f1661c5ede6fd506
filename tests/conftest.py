"""Fixtures shared by every test package: where the real data is, fresh settings."""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ctnode.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


REAL_CASE_IN_ID = re.compile(r"(lidc_idri_\d+|lungpetctdx_[A-Za-z0-9]+)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``real_analysis`` on one real case run on one xdist worker
    (``--dist loadgroup``), so that case's analyses (``real_analysis`` below) are made
    once, while the workers share out the cases. The case is the marker's argument, or
    the one named in the test's parameters; tests over several cases form a group of
    their own."""
    for item in items:
        marker = item.get_closest_marker("real_analysis")
        if marker is None:
            continue
        case = marker.args[0] if marker.args else None
        if case is None and "[" in item.nodeid:
            found = REAL_CASE_IN_ID.search(item.nodeid.split("[", 1)[1])
            case = found.group(1) if found else None
        item.add_marker(pytest.mark.xdist_group(f"real_{case}" if case else "real_analysis"))


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


# --- Real cases, analysed once per test session --------------------------------------
# Several test packages check different findings on the same real case (and on the same
# image variants of it). One analysis takes 10-35 s on 2 cores, so each (case, variant)
# is analysed once per pytest process and shared; callers must not mutate the result.


@dataclass(frozen=True)
class RealAnalysis:
    """A real case's volume (after the variant), its analysis and mapped probabilities."""

    volume: Any
    analysis: Any
    probabilities: dict[str, float | None]


def real_volume(name: str, variant: str = "") -> Any:
    """The selected series of a shared case as an HUVolume, with an image variant applied
    (``phantom.variation.IMAGE_VARIANTS``; "" is the original). Skips when absent."""
    from ctnode.settings import SelectionSettings
    from phantom.variation import IMAGE_VARIANTS
    from series_selector import index_path, load_volume, select_series

    index = index_path(shared_case(name))
    volume = load_volume(index, select_series(index, SelectionSettings()))
    return IMAGE_VARIANTS[variant](volume) if variant else volume


MAX_CACHED_ANALYSES = 10
"""Analyses kept (least recently used dropped first): each holds its volume, work grid
and masks, ~150-250 MB for the shared cases, and a CI machine may have 7 GB."""
_ANALYSES: OrderedDict[tuple[str, str], RealAnalysis] = OrderedDict()
"""Keyed by (case name, variant), or ("uid:<series UID>", "") from ``evaluation.real``."""


def real_analysis(name: str, variant: str = "") -> RealAnalysis:
    """The default analyzer's result on a shared case (cached; skips when absent)."""
    shared_case(name)
    key = (name, variant)
    if key not in _ANALYSES:
        volume = real_volume(name, variant)
        by_uid = ("uid:" + volume.series_uid, "")  # analysed by evaluation.real already
        _remember(key, _ANALYSES.pop(by_uid) if not variant and by_uid in _ANALYSES
                  else _analyse_default(volume))
    _ANALYSES.move_to_end(key)
    return _ANALYSES[key]


def _remember(key: tuple[str, str], result: RealAnalysis) -> None:
    _ANALYSES[key] = result
    while len(_ANALYSES) > MAX_CACHED_ANALYSES:
        _ANALYSES.popitem(last=False)


def _analyse_default(volume: Any) -> RealAnalysis:
    from ctnode.settings import AnalyzerSettings
    from inference.analyzer import analyze, map_findings

    s = AnalyzerSettings()
    analysis = analyze(volume, s)
    probs = {f.key: f.probability for f in map_findings(analysis, s)}
    return RealAnalysis(volume, analysis, probs)


def cached_default_analysis(volume: Any, settings: Any) -> Any:
    """``analyze`` for ``evaluation.real``: an original series analysed with default
    settings comes from (and goes into) the same session cache."""
    from ctnode.settings import AnalyzerSettings
    from inference.analyzer import analyze

    if settings != AnalyzerSettings():
        return analyze(volume, settings)
    for key, cached in _ANALYSES.items():
        if not key[1] and cached.volume.series_uid == volume.series_uid:
            _ANALYSES.move_to_end(key)
            return cached.analysis
    result = _analyse_default(volume)
    _remember(("uid:" + volume.series_uid, ""), result)
    return result.analysis
