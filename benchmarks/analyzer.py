"""Analyzer benchmark: per-stage time and peak memory of chest_quant on a full-size CT.

Generates a 512 x 512 x 300 phantom at 1 mm slices (0.74 mm pixels, FOV 380 mm,
random lesions), saves it, then analyses it in a fresh child process so that
the peak resident memory measured (VmHWM) is the analyzer's plus the volume it
reads and the imports, not the phantom generator's. Then the same for a
truncated-field-of-view contrast study (issue 12): the arterial-phase phantom
with a 12 mm nodule, a 300 ml right effusion and coronary calcium
reconstructed on a 228 mm field (the central 60 % of the 380 mm field brought
back to 512 x 512, 0.45 mm pixels; both lungs cut laterally), and prints its
time and memory as a ratio of the first run's. Target (issues 5 and 12): under
60 s and 4 GB on 2 cores for each.

Run from the repository root::

    .venv/bin/python -m benchmarks.analyzer                  # 512 x 512 x 300, 1 mm
    .venv/bin/python -m benchmarks.analyzer --matrix 256 --slices 150 --slice-mm 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

TRUNCATED_FRACTION = 0.6


def _generate(path: Path, matrix: int, slices: int, slice_mm: float, seed: int,
              truncated_contrast: bool = False) -> dict:
    from phantom import PhantomSpec, generate_phantom
    from phantom.presets import random_lesions

    lesions = random_lesions(np.random.default_rng(seed), 0.4)
    if truncated_contrast:
        # A fixed, stated set: a pneumothorax in a lung cut by the border is a known
        # failure of the cut-lung rule (its interior is mostly free gas), see the report.
        from phantom.types import CoronaryCalcification, Nodule, PleuralEffusion

        lesions = (Nodule(12.0), PleuralEffusion("right", 300.0), CoronaryCalcification())
    t0 = time.perf_counter()
    ph = generate_phantom(PhantomSpec(matrix=matrix, fov_mm=380.0, slice_spacing_mm=slice_mm,
                                      n_slices=slices, seed=seed, lesions=lesions,
                                      contrast_phase="arterial" if truncated_contrast
                                      else None))
    hu, spacing, origin = ph.hu, [float(s) for s in ph.spacing], [float(o) for o in ph.origin]
    if truncated_contrast:
        hu, spacing, origin = _targeted(hu, spacing, origin, matrix)
    np.save(path / "hu.npy", hu)
    meta = {"spacing": spacing, "origin": origin,
            "lesions": [type(x).__name__ for x in lesions],
            "generate_s": round(time.perf_counter() - t0, 1), "shape": list(hu.shape)}
    (path / "meta.json").write_text(json.dumps(meta))
    return meta


def _targeted(hu: np.ndarray, spacing: list[float], origin: list[float], matrix: int
              ) -> tuple[np.ndarray, list[float], list[float]]:
    """The central ``TRUNCATED_FRACTION`` of the field on the full matrix (a targeted recon)."""
    from scipy import ndimage as ndi

    n = hu.shape[1]
    w = int(round(n * TRUNCATED_FRACTION))
    a = (n - w) // 2
    zoom = matrix / w
    out = np.empty((hu.shape[0], matrix, matrix), dtype=np.int16)
    for k in range(hu.shape[0]):
        out[k] = np.rint(ndi.zoom(hu[k, a:a + w, a:a + w].astype(np.float32), zoom, order=1,
                                  grid_mode=True, mode="nearest")[:matrix, :matrix])
    px = spacing[0] / zoom
    # The first new pixel's centre: half a new pixel inside the crop's outer edge.
    corner = origin[0] + (a - 0.5) * spacing[0] + px / 2.0
    return out, [px, px, spacing[2]], [corner, origin[1] + (a - 0.5) * spacing[1] + px / 2.0,
                                       origin[2]]


def _status_mb(field: str) -> float:
    """VmRSS / VmHWM of this process in MB (Linux). Not ru_maxrss: Linux carries
    that across fork+exec, so a child would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1]) / 1024.0
    return float("nan")


def _analyse(path: Path) -> dict:
    """Child process: load the volume, run the model, report stages and memory."""
    from ctnode.settings import AnalyzerSettings
    from inference.analyzer import analyze, map_findings
    from inference.analyzer.evaluation import IDENTITY
    from series_selector.types import HUVolume

    meta = json.loads((path / "meta.json").read_text())
    voxels = np.load(path / "hu.npy")
    volume = HUVolume(voxels=voxels, spacing=tuple(meta["spacing"]),
                      origin=tuple(meta["origin"]), direction=IDENTITY)
    rss_before = _status_mb("VmRSS")
    settings = AnalyzerSettings()
    tracemalloc.start()
    t0 = time.perf_counter()
    # What ChestQuantModel.predict does, kept apart so the stage timings stay visible.
    analysis = analyze(volume, settings)
    findings = map_findings(analysis, settings)
    total = time.perf_counter() - t0
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "total_s": round(total, 2),
        "stages_s": {k: round(v, 2) for k, v in analysis.stage_seconds.items()},
        "volume_mb": round(voxels.nbytes / 2**20, 1),
        "rss_before_mb": round(rss_before, 1),
        "peak_rss_mb": round(_status_mb("VmHWM"), 1),
        "peak_numpy_alloc_mb": round(traced_peak / 2**20, 1),
        "findings": {f.key: None if f.probability is None else round(f.probability, 2)
                     for f in findings},
        "image": analysis.conditions.to_json(),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--matrix", type=int, default=512)
    ap.add_argument("--slices", type=int, default=300)
    ap.add_argument("--slice-mm", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--analyse", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.analyse is not None:
        print(json.dumps(_analyse(args.analyse)))
        return
    runs = {}
    for name, truncated in (("whole chest", False), ("truncated-FOV arterial contrast", True)):
        with tempfile.TemporaryDirectory(prefix="ctnode-bench-") as tmp:
            path = Path(tmp)
            meta = _generate(path, args.matrix, args.slices, args.slice_mm, args.seed, truncated)
            print(f"{name}: phantom {meta['shape']} spacing "
                  f"{[round(v, 3) for v in meta['spacing']]} lesions {meta['lesions']} "
                  f"(generated in {meta['generate_s']} s)")
            child = subprocess.run([sys.executable, "-m", "benchmarks.analyzer", "--analyse",
                                    tmp], check=False, capture_output=True, text=True)
            if child.returncode != 0:
                print(child.stderr[-3000:])
                raise SystemExit(f"analysis of the {name} volume failed")
            result = json.loads(child.stdout.strip().splitlines()[-1])
        runs[name] = result
        print(f"total {result['total_s']} s; peak RSS {result['peak_rss_mb']} MB "
              f"(volume {result['volume_mb']} MB, RSS before analysis "
              f"{result['rss_before_mb']} MB, peak numpy allocations during analysis "
              f"{result['peak_numpy_alloc_mb']} MB)")
        print("| stage | seconds |\n|---|---|")
        for stage, s in result["stages_s"].items():
            print(f"| {stage} | {s} |")
        print("findings:", json.dumps(result["findings"]))
        if "image" in result:
            print("image:", json.dumps(result["image"]))
    base, trunc = runs["whole chest"], runs["truncated-FOV arterial contrast"]
    print(f"truncated/whole: time x{trunc['total_s'] / max(base['total_s'], 1e-9):.2f}, "
          f"peak RSS x{trunc['peak_rss_mb'] / max(base['peak_rss_mb'], 1e-9):.2f}")

if __name__ == "__main__":
    main()
