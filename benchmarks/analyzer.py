"""Analyzer benchmark: per-stage time and peak memory of chest_quant on a full-size CT.

Generates a 512 x 512 x 300 phantom at 1 mm slices (0.74 mm pixels, FOV 380 mm,
random lesions), saves it, then analyses it in a fresh child process so that
the peak resident memory measured (VmHWM) is the analyzer's plus the volume it
reads and the imports, not the phantom generator's. Target (issue 5): under
60 s and 4 GB on 2 cores.

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


def _generate(path: Path, matrix: int, slices: int, slice_mm: float, seed: int) -> dict:
    from phantom import PhantomSpec, generate_phantom
    from phantom.presets import random_lesions

    lesions = random_lesions(np.random.default_rng(seed), 0.4)
    t0 = time.perf_counter()
    ph = generate_phantom(PhantomSpec(matrix=matrix, fov_mm=380.0, slice_spacing_mm=slice_mm,
                                      n_slices=slices, seed=seed, lesions=lesions))
    np.save(path / "hu.npy", ph.hu)
    meta = {"spacing": [float(s) for s in ph.spacing], "origin": [float(o) for o in ph.origin],
            "lesions": [type(x).__name__ for x in lesions],
            "generate_s": round(time.perf_counter() - t0, 1), "shape": list(ph.hu.shape)}
    (path / "meta.json").write_text(json.dumps(meta))
    return meta


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
    with tempfile.TemporaryDirectory(prefix="ctnode-bench-") as tmp:
        path = Path(tmp)
        meta = _generate(path, args.matrix, args.slices, args.slice_mm, args.seed)
        print(f"phantom {meta['shape']} spacing {meta['spacing']} lesions {meta['lesions']} "
              f"(generated in {meta['generate_s']} s)")
        child = subprocess.run([sys.executable, "-m", "benchmarks.analyzer", "--analyse", tmp],
                               check=True, capture_output=True, text=True)
        result = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"total {result['total_s']} s; peak RSS {result['peak_rss_mb']} MB "
          f"(volume {result['volume_mb']} MB, RSS before analysis {result['rss_before_mb']} MB, "
          f"peak numpy allocations during analysis {result['peak_numpy_alloc_mb']} MB)")
    print("| stage | seconds |\n|---|---|")
    for stage, s in result["stages_s"].items():
        print(f"| {stage} | {s} |")
    print("findings:", json.dumps(result["findings"]))


if __name__ == "__main__":
    main()
