"""Per-model benchmark (issue 16): seconds and peak memory per study, at native input size.

Each enabled-able model (``chest_quant``, and ``astra_features`` when its weights
are installed) runs in a fresh child process on the same real volume (default
``../shared/data/lidc_idri_0001``: 512 x 512 x 133, 2.5 mm; a 512 x 512 x 300
phantom when the shared data is absent), so that each peak resident memory
(VmHWM) is that model's: imports, weights, the volume and its activations. The
volume is loaded by the node's own series selection, at its native size.
``chest_quant`` (the default model) is the baseline of the ratio column.

Run from the repository root::

    .venv/bin/python -m benchmarks.models                       # CPU, 2 threads
    .venv/bin/python -m benchmarks.models --device cuda --threads 16
    .venv/bin/python -m benchmarks.models --weights-dir /tmp/w   # where astra is installed

astra's weights must be installed (``ctnode weights install astra``) in the
weights directory (setting ``weights.directory`` or ``--weights-dir``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CASE = REPO.parent / "shared" / "data" / "lidc_idri_0001"


def _status_mb(field: str) -> float:
    """VmRSS / VmHWM of this process in MB (Linux); ru_maxrss would carry the parent's."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1]) / 1024.0
    return float("nan")


def _save_volume(case: Path | None, out: Path) -> dict:
    """The volume the pipeline would analyse, as .npy + geometry (parent side)."""
    if case is not None and case.exists():
        from ctnode.settings import SelectionSettings
        from series_selector import index_path, load_volume, select_series

        index = index_path(case)
        volume = load_volume(index, select_series(index, SelectionSettings()))
        hu, spacing, origin, direction = (volume.voxels, volume.spacing, volume.origin,
                                          volume.direction)
        source = case.name
    else:
        from phantom import PhantomSpec, generate_phantom

        ph = generate_phantom(PhantomSpec(matrix=512, fov_mm=380.0, slice_spacing_mm=1.0,
                                          n_slices=300, seed=0))
        hu, spacing, origin = ph.hu, ph.spacing, ph.origin
        direction = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
        source = "phantom 512x512x300"
    np.save(out / "hu.npy", np.asarray(hu, dtype=np.float32))
    meta = {"source": source, "shape": list(hu.shape), "spacing": [float(s) for s in spacing],
            "origin": [float(o) for o in origin], "direction": [float(d) for d in direction]}
    (out / "meta.json").write_text(json.dumps(meta))
    return meta


def _child(model: str, folder: Path, weights_dir: str, device: str, threads: int,
           repeats: int) -> dict:
    """Child process: build one model from settings, run it ``repeats`` times."""
    import torch

    torch.set_num_threads(threads)
    from ctnode.settings import Settings
    from inference.ensemble import MODEL_REGISTRY
    from inference.models.runner import load_model_class
    from series_selector.types import HUVolume

    meta = json.loads((folder / "meta.json").read_text())
    volume = HUVolume(np.load(folder / "hu.npy"), tuple(meta["spacing"]), tuple(meta["origin"]),
                      tuple(meta["direction"]), series_uid="benchmark")
    base_mb = _status_mb("VmRSS")
    settings = Settings(weights={"directory": weights_dir},
                        inference={"model_device": device})
    t0 = time.perf_counter()
    m = load_model_class(MODEL_REGISTRY[model]).from_settings(settings)
    load_s = time.perf_counter() - t0
    if not m.status.weights_installed:
        return {"model": model, "skipped": m.status.description}
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        m.predict(volume)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - t0)
    gpu_mb = (torch.cuda.max_memory_allocated() / 2**20) if device.startswith("cuda") else None
    return {"model": model, "version": m.status.version, "load_s": round(load_s, 2),
            "seconds": [round(s, 2) for s in seconds], "rss_before_mb": round(base_mb),
            "peak_rss_mb": round(_status_mb("VmHWM")),
            "gpu_peak_mb": None if gpu_mb is None else round(gpu_mb)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", type=Path, default=DEFAULT_CASE)
    ap.add_argument("--weights-dir", default="")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--models", default="chest_quant,astra_features")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        res = _child(args.child[0], Path(args.child[1]), args.weights_dir, args.device,
                     args.threads, args.repeats)
        print(json.dumps(res))
        return
    if not args.weights_dir:
        from ctnode.settings import get_settings

        args.weights_dir = str(get_settings().weights.directory)
    with tempfile.TemporaryDirectory() as tmp:
        meta = _save_volume(args.case, Path(tmp))
        print(f"volume: {meta['source']}, {meta['shape']} voxels [z, y, x], spacing "
              f"{[round(s, 3) for s in meta['spacing']]} mm; device {args.device}, "
              f"{args.threads} thread(s)")
        rows = []
        for model in args.models.split(","):
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.models", "--child", model, tmp,
                 "--weights-dir", args.weights_dir, "--device", args.device,
                 "--threads", str(args.threads), "--repeats", str(args.repeats)],
                cwd=REPO, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                print(f"{model}: child failed:\n{proc.stderr[-2000:]}")
                continue
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    base = next((min(r["seconds"]) for r in rows if r["model"] == "chest_quant"
                 and "seconds" in r), None)
    print("\n| model | version | load s | s per study | ratio vs chest_quant | peak RSS MB | "
          "GPU peak MB |\n|---|---|---|---|---|---|---|")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['model']} | — | — | skipped: {r['skipped']} | | | |")
            continue
        s = min(r["seconds"])
        ratio = f"{s / base:.1f}x" if base else "—"
        print(f"| {r['model']} | {r['version']} | {r['load_s']} | {s:.1f} | {ratio} | "
              f"{r['peak_rss_mb']} | {r['gpu_peak_mb'] if r['gpu_peak_mb'] is not None else '—'} |")


if __name__ == "__main__":
    main()
