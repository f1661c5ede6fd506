"""Ingest benchmark: header indexing and time to a ready HU volume, vs naive full reads.

Writes (or takes) a 3-series phantom CT study of about 1,000 instances and
measures, side by side in the same run and on the same files:

* ours: ``index_path`` (headers only) -> ``select_series`` (rules + lung check
  on a few slices) -> ``load_volume`` (pixels of the chosen series only);
* naive: ``dcmread`` of every file with its pixels decoded, grouping by
  series, taking the series with the most slices, stacking it by z.

Rounds alternate (ours, naive, ours, ...) so that the page cache favours
neither; the median of the rounds is reported. Files are in the page cache
after the first round, so the numbers show parsing and decoding cost, not disk
or network reads (where reading fewer pixel bytes gains more). The naive path
also holds every series' pixels in memory at once; ours holds one series.

Run from the repository root::

    .venv/bin/python -m benchmarks.ingest                      # phantom, uncompressed
    .venv/bin/python -m benchmarks.ingest --layout phantom     # thin series = 94 % of files
    .venv/bin/python -m benchmarks.ingest --study DIR          # an existing study folder
    .venv/bin/python -m benchmarks.ingest --transfer-syntax 1.2.840.10008.1.2.4.90
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom

from ctnode.settings import SelectionSettings
from series_selector import index_path, load_volume, select_series


def _write_study(out: Path, matrix: int, spacing_mm: float, transfer_syntax: str,
                 layout: str) -> None:
    """A phantom study of three series.

    ``kernels`` (default): localizer + the same thin acquisition reconstructed
    with a lung and a standard kernel, as scanners send it; the selector takes
    the standard one, i.e. about half of the instances. ``phantom``: the
    phantom's own default (localizer, thin lung-kernel series, 5 mm series),
    where the chosen thin series is almost every instance.
    """
    from phantom import (
        DEFAULT_SERIES,
        PhantomSpec,
        SeriesKind,
        SeriesSpec,
        generate_phantom,
        write_dicom_study,
    )

    series = DEFAULT_SERIES if layout == "phantom" else (
        DEFAULT_SERIES[0],
        SeriesSpec("thin_lung", SeriesKind.AXIAL, None, kernel="LUNG", series_number=2),
        SeriesSpec("thin_soft", SeriesKind.AXIAL, None, kernel="STANDARD", series_number=3),
    )
    phantom = generate_phantom(PhantomSpec(matrix=matrix, slice_spacing_mm=spacing_mm))
    write_dicom_study(phantom, out, series=series, transfer_syntax=transfer_syntax)


def ours(root: Path, settings: SelectionSettings) -> dict[str, float]:
    t0 = time.perf_counter()
    index = index_path(root)
    t1 = time.perf_counter()
    report = select_series(index, settings)
    t2 = time.perf_counter()
    volume = load_volume(index, report)
    t3 = time.perf_counter()
    return {"n": len(index.instances), "index_s": t1 - t0, "select_s": t2 - t1,
            "volume_s": t3 - t2, "total_s": t3 - t0, "slices": volume.shape[0]}


def naive(root: Path) -> dict[str, float]:
    """What a simple script does: read everything, pixels included, then pick."""
    t0 = time.perf_counter()
    by_series: dict[str, list[tuple[float, np.ndarray]]] = defaultdict(list)
    n = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(path, force=True)
            pixels = ds.pixel_array
        except Exception:
            continue
        n += 1
        if "ImagePositionPatient" not in ds:
            continue
        hu = pixels.astype(np.float32) * float(ds.get("RescaleSlope", 1)) + float(
            ds.get("RescaleIntercept", 0))
        by_series[str(ds.SeriesInstanceUID)].append((float(ds.ImagePositionPatient[2]), hu))
    t1 = time.perf_counter()
    best = max(by_series.values(), key=len)
    best.sort(key=lambda item: item[0])
    volume = np.stack([hu for _, hu in best])
    t2 = time.perf_counter()
    return {"n": n, "index_s": t1 - t0, "volume_s": t2 - t1, "total_s": t2 - t0,
            "slices": volume.shape[0]}


def _median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", type=Path, help="existing study folder (default: generate)")
    parser.add_argument("--matrix", type=int, default=256, help="matrix of generated images")
    parser.add_argument("--layout", choices=("kernels", "phantom"), default="kernels",
                        help="which three series to write (see _write_study)")
    parser.add_argument("--spacing", type=float, default=None,
                        help="thin-series slice step in mm; default 0.625 (kernels) or 0.3125 "
                        "(phantom, a whole fraction of its 5 mm series), which over the 290 mm "
                        "chest gives about 1,000 instances")
    parser.add_argument("--transfer-syntax", default="1.2.840.10008.1.2.1")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    settings = SelectionSettings()
    with tempfile.TemporaryDirectory(prefix="ctnode-bench-") as tmp:
        root = args.study
        if root is None:
            root = Path(tmp) / "study"
            t = time.perf_counter()
            spacing = args.spacing or (0.625 if args.layout == "kernels" else 0.3125)
            _write_study(root, args.matrix, spacing, args.transfer_syntax, args.layout)
            print(f"wrote study in {time.perf_counter() - t:.1f} s")
        files = [p for p in root.rglob("*") if p.is_file()]
        size_mb = sum(p.stat().st_size for p in files) / 1e6
        print(f"study: {root} ({len(files)} files, {size_mb:.0f} MB)")
        ours_runs, naive_runs = [], []
        for _ in range(args.rounds):
            ours_runs.append(ours(root, settings))
            naive_runs.append(naive(root))
    n = ours_runs[0]["n"]
    o_index, n_index = _median(ours_runs, "index_s"), _median(naive_runs, "index_s")
    o_total, n_total = _median(ours_runs, "total_s"), _median(naive_runs, "total_s")
    print(f"{'step':<34}{'ours':>12}{'naive':>12}{'naive/ours':>12}")
    print(f"{'read all files (instances/s)':<34}{n / o_index:>12.0f}{n / n_index:>12.0f}"
          f"{n_index / o_index:>12.1f}")
    print(f"{'  seconds for ' + str(int(n)) + ' instances':<34}{o_index:>12.2f}{n_index:>12.2f}")
    print(f"{'select (rules + lung check) s':<34}{_median(ours_runs, 'select_s'):>12.2f}"
          f"{'-':>12}")
    print(f"{'build HU volume s':<34}{_median(ours_runs, 'volume_s'):>12.2f}"
          f"{_median(naive_runs, 'volume_s'):>12.2f}")
    print(f"{'seconds to a ready HU volume':<34}{o_total:>12.2f}{n_total:>12.2f}"
          f"{n_total / o_total:>12.1f}")
    print(f"volume slices: ours {int(ours_runs[0]['slices'])}, naive "
          f"{int(naive_runs[0]['slices'])}; median of {args.rounds} alternating rounds")


if __name__ == "__main__":
    main()
