"""Variation corpus at full size: every variant of a chest case, every finding's probability.

For each case (the phantom, and the real shared cases when ``../shared/data``
is present) the analyzer runs on the original volume and on each image
variant (``phantom.variation.IMAGE_VARIANTS``: cropped fields of view,
thicker slices, added noise, sharper/softer kernel); the phantom also runs as
its own variants (contrast phases, arms down, obese, child, scoliosis,
pacemaker, right-sided arch). Prints a markdown table of variants x findings and,
per case, the largest change of a finding's probability against the original.

Run from the repository root::

    .venv/bin/python -m benchmarks.variation                 # phantom + real cases
    .venv/bin/python -m benchmarks.variation --no-real --matrix 160
    .venv/bin/python -m benchmarks.variation --no-phantom --case lidc_idri_0003
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ctnode.settings import get_settings
from inference.errors import InferenceError
from inference.findings import FINDING_KEYS
from inference.models.chest_quant import ChestQuantModel
from phantom.variation import IMAGE_VARIANTS
from series_selector import check_chest_anatomy, index_path, load_volume, select_series
from series_selector.types import HUVolume, Verdict

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_CASES = ("lungpetctdx_A0001", "lidc_idri_0001", "lidc_idri_0003")
PHANTOM_VARIANTS: dict[str, dict[str, Any]] = {
    "arterial": {"contrast_phase": "arterial"},
    "venous": {"contrast_phase": "venous"},
    "arms_down": {"arms": "down"},
    "obese": {"fat_mm": 60.0},
    "child": {"body_scale": 0.6},
    "scoliosis": {"scoliosis_deg": 25.0},
    "right_arch": {"aortic_arch": "right"},
    "noise60": {"noise_sigma_hu": 60.0},
}


def run_volume(volume: HUVolume, model: ChestQuantModel) -> dict[str, Any]:
    """What the NIfTI door does: the lung-field check, then the analyzer."""
    t0 = time.perf_counter()
    verdict = check_chest_anatomy(volume, get_settings().selection)
    if verdict.verdict is Verdict.FAIL:
        return {"status": "Failure", "error": verdict.reason}
    try:
        out = model.predict(volume)
    except InferenceError as exc:
        return {"status": "Failure", "error": str(exc)}
    return {"status": "Success", "seconds": round(time.perf_counter() - t0, 1),
            "p": {f.key: None if f.probability is None else round(f.probability, 3)
                  for f in out.findings},
            "image": None if out.conditions is None else out.conditions.to_json()}


def run_case(name: str, volume: HUVolume, model: ChestQuantModel,
             extra: dict[str, Callable[[], HUVolume]] | None = None) -> dict[str, Any]:
    rows = {"original": run_volume(volume, model)}
    for tag, fn in IMAGE_VARIANTS.items():
        rows[tag] = run_volume(fn(volume), model)
        print(f"{name} {tag}: {rows[tag]['status']}", flush=True)
    for tag, make in (extra or {}).items():
        rows[tag] = run_volume(make(), model)
        print(f"{name} {tag}: {rows[tag]['status']}", flush=True)
    return rows


def max_change(rows: dict[str, Any]) -> tuple[float, str]:
    """Largest |p(variant) - p(original)| over findings assessed in both."""
    base = rows["original"].get("p") or {}
    best, where = 0.0, ""
    for tag, r in rows.items():
        for k, p in (r.get("p") or {}).items():
            b = base.get(k)
            if p is None or b is None:
                continue
            if abs(p - b) > best:
                best, where = abs(p - b), f"{tag}/{k} {b:.2f}->{p:.2f}"
    return best, where


def table(results: dict[str, dict[str, Any]]) -> str:
    keys = [k for k in FINDING_KEYS
            if any((r.get("p") or {}).get(k) is not None
                   for rows in results.values() for r in rows.values())]
    lines = ["| case | variant | " + " | ".join(keys) + " |",
             "|---|---|" + "---|" * len(keys)]
    for case, rows in results.items():
        for tag, r in rows.items():
            if r["status"] != "Success":
                lines.append(f"| {case} | {tag} | refused: {r['error']} |")
                continue
            cells = ["-" if r["p"].get(k) is None else f"{r['p'][k]:.2f}" for k in keys]
            lines.append(f"| {case} | {tag} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--matrix", type=int, default=256)
    ap.add_argument("--slice-mm", type=float, default=2.5)
    ap.add_argument("--no-real", action="store_true")
    ap.add_argument("--no-phantom", action="store_true", help="real cases only")
    ap.add_argument("--case", action="append", choices=REAL_CASES,
                    help="only this real case (repeatable; default: all)")
    ap.add_argument("--json", type=Path, help="also write all results here")
    args = ap.parse_args(argv)
    from inference.analyzer.evaluation import phantom_volume
    from phantom import PhantomSpec, generate_phantom

    model = ChestQuantModel.from_settings(get_settings())

    def phantom(**kw: Any) -> HUVolume:
        return phantom_volume(generate_phantom(PhantomSpec(
            matrix=args.matrix, fov_mm=380.0, slice_spacing_mm=args.slice_mm, seed=0, **kw)))

    results: dict[str, dict[str, Any]] = {}
    extra = {tag: (lambda kw=kw: phantom(**kw)) for tag, kw in PHANTOM_VARIANTS.items()}
    if not args.no_phantom:
        results["phantom"] = run_case("phantom", phantom(), model, extra)
    if not args.no_real and DATA.is_dir():
        for case in args.case or REAL_CASES:
            index = index_path(DATA / case)
            volume = load_volume(index, select_series(index, get_settings().selection))
            results[case] = run_case(case, volume, model)
    print(table(results))
    for case, rows in results.items():
        change, where = max_change(rows)
        print(f"{case}: largest probability change across variants {change:.2f} ({where})")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
