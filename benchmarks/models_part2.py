"""The seed's five learned families (issue 17): seconds and peak memory per study, native size.

Each model runs in a fresh child process on the same volume as
``benchmarks.models`` (default ``../shared/data/lidc_idri_0001``, 512 x 512 x
133 at 2.5 mm; a 512 x 512 x 300 phantom when the shared data is absent), at
its published (CT-CLIP, fVLM) or node (MedNeXt, diffusion) configuration, so
each peak resident memory (VmHWM) is that model's: imports, weights, volume and
activations. Weights are randomly initialised: time and memory do not depend
on their values (the published checkpoints are not redistributable). Prompt
embeddings are random unit vectors of the right shape; the diffusion model is
given a calibration. ``chest_quant`` is the baseline of the ratio column.

Run from the repository root::

    .venv/bin/python -m benchmarks.models_part2                    # CPU, 2 threads
    .venv/bin/python -m benchmarks.models_part2 --device cuda --threads 16
    .venv/bin/python -m benchmarks.models_part2 --models ctclip_classfine,mednext
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

from benchmarks.models import DEFAULT_CASE, REPO, _save_volume, _status_mb

MODELS = ("chest_quant", "ctclip", "ctclip_classfine", "fvlm", "mednext", "diffusion_anomaly")


def _build(name: str, device: str):  # type: ignore[no-untyped-def]
    import torch

    from ctnode.settings import AnalyzerSettings
    from inference.ensemble import MODEL_REGISTRY
    from inference.models.chest_quant import ChestQuantModel
    from inference.models.ctrate import CTRATE_KEYS, CTRATE_TO_KEY
    from inference.models.fvlm import FVLM_ITEMS, fvlm_prompt
    from inference.models.learned import family
    from inference.models.prompts import PromptEmbeddings
    from inference.models.runner import load_model_class

    if name == "chest_quant":
        return ChestQuantModel()
    torch.manual_seed(0)
    net = family(name).build().eval().to(device)
    for p in net.parameters():
        p.requires_grad_(False)
    sha = "0" * 64
    model = load_model_class(MODEL_REGISTRY[name])(net, device=device, weights_version="random",
                                                   weights_sha256=sha)
    rng = np.random.default_rng(0)

    def unit(shape: tuple[int, ...]) -> np.ndarray:
        e = rng.normal(size=shape).astype(np.float32)
        return e / np.linalg.norm(e, axis=-1, keepdims=True)

    if name == "ctclip":
        model.set_prompts(PromptEmbeddings("ctclip", sha, CTRATE_KEYS, ("",) * 18,
                                           tuple(("p", "n") for _ in CTRATE_KEYS),
                                           unit((18, 2, 512))))
    if name == "fvlm":
        model._analyzer = AnalyzerSettings()
        model.set_prompts(PromptEmbeddings(
            "fvlm", sha, tuple(CTRATE_TO_KEY[n] for _, n in FVLM_ITEMS),
            tuple(r for r, _ in FVLM_ITEMS), tuple(fvlm_prompt(n) for _, n in FVLM_ITEMS),
            unit((len(FVLM_ITEMS), 2, 256))))
    if name == "diffusion_anomaly":
        model._analyzer = AnalyzerSettings()
        net.pixel_threshold.fill_(0.2)
        net.score_mean.fill_(0.1)
        net.score_std.fill_(0.05)
    return model


def _child(name: str, folder: Path, device: str, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from series_selector.types import HUVolume

    meta = json.loads((folder / "meta.json").read_text())
    volume = HUVolume(np.load(folder / "hu.npy"), tuple(meta["spacing"]), tuple(meta["origin"]),
                      tuple(meta["direction"]), series_uid="benchmark")
    t0 = time.perf_counter()
    model = _build(name, device)
    load_s = time.perf_counter() - t0
    load_mb = _status_mb("VmRSS")
    t0 = time.perf_counter()
    model.predict(volume)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    gpu_mb = (torch.cuda.max_memory_allocated() / 2**20) if device.startswith("cuda") else None
    return {"model": name, "build_s": round(load_s, 1), "seconds": round(seconds, 1),
            "rss_after_build_mb": round(load_mb), "peak_rss_mb": round(_status_mb("VmHWM")),
            "gpu_peak_mb": None if gpu_mb is None else round(gpu_mb)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", type=Path, default=DEFAULT_CASE)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.child[0], Path(args.child[1]), args.device, args.threads)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        meta = _save_volume(args.case, Path(tmp))
        print(f"volume: {meta['source']}, {meta['shape']} voxels [z, y, x], spacing "
              f"{[round(s, 3) for s in meta['spacing']]} mm; device {args.device}, "
              f"{args.threads} thread(s)", flush=True)
        rows = []
        for name in args.models.split(","):
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.models_part2", "--child", name, tmp,
                 "--device", args.device, "--threads", str(args.threads)],
                cwd=REPO, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                print(f"{name}: child failed:\n{proc.stderr[-2000:]}", flush=True)
                continue
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    base = next((r["seconds"] for r in rows if r["model"] == "chest_quant"), None)
    print("\n| model | build s | s per study | ratio vs chest_quant | RSS after build MB | "
          "peak RSS MB | GPU peak MB |\n|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = f"{r['seconds'] / base:.1f}x" if base else "—"
        gpu = r["gpu_peak_mb"] if r["gpu_peak_mb"] is not None else "—"
        print(f"| {r['model']} | {r['build_s']} | {r['seconds']} | {ratio} | "
              f"{r['rss_after_build_mb']} | {r['peak_rss_mb']} | {gpu} |")


if __name__ == "__main__":
    main()
