"""Each single-lesion preset of ``phantom.presets`` through the analyzer, at several matrices.

``python -m evaluation.presets --matrix 160 256 512`` generates, for every preset
whose finding the analyzer assesses, a phantom (seed 3) holding that lesion alone,
analyses it at each matrix size, and prints the probability of the lesion's own
finding (the truth's ``finding``) with the lesions missed (p < 0.5) under the table.
The 128-160 matrices (2.4-2.7 mm pixels) are what the tests and the cohort use for
time; a clinical scan is 512 (0.7 mm), analysed on a ~1.4 mm work grid, which a
256 matrix gives directly (issue 12: presets found at 160 were missed at 256 and
512). Pericardial effusion is generated on a venous-phase phantom: without contrast
the sac is not assessed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass

from ctnode.settings import AnalyzerSettings

ASSESSED_PRESETS = (
    "nodule", "part_solid_nodule", "ground_glass_nodule", "mass", "ground_glass",
    "consolidation", "effusion", "pericardial_effusion", "emphysema",
    "coronary_calcification", "aortic_calcification", "pneumothorax", "pacemaker", "port",
    "metal", "low_bone_density", "cardiomegaly", "dilated_aorta",
)
"""Presets whose finding the analyzer scores (``pleural_effusion`` is ``effusion``'s alias;
the rest are not assessed, ``GET /health``)."""
SEED = 3
NEEDS_CONTRAST = ("pericardial_effusion",)


@dataclass(frozen=True, slots=True)
class PresetResult:
    preset: str
    finding: str
    matrix: int
    probability: float | None


def run_preset(name: str, matrix: int, settings: AnalyzerSettings) -> PresetResult:
    """The probability of ``name``'s own finding on a phantom holding it alone."""
    from inference.analyzer.evaluation import phantom_volume
    from inference.models.chest_quant import ChestQuantModel
    from phantom import PhantomSpec, generate_phantom
    from phantom.presets import lesion_from_text
    from phantom.types import ContrastPhase

    phase = ContrastPhase.VENOUS if name in NEEDS_CONTRAST else None
    ph = generate_phantom(PhantomSpec(lesions=(lesion_from_text(name),), seed=SEED,
                                      matrix=matrix, contrast_phase=phase))
    finding = str(ph.truth["lesions"][0]["finding"])
    out = ChestQuantModel(settings).predict(phantom_volume(ph))
    probs = {f.key: f.probability for f in out.findings}
    return PresetResult(name, finding, matrix, probs.get(finding))


def table(results: list[PresetResult], matrices: list[int]) -> str:
    """Markdown: one row per preset, one column per matrix; misses listed below."""
    cell = {(r.preset, r.matrix): r for r in results}
    lines = ["| preset | finding | " + " | ".join(f"{m}" for m in matrices) + " |",
             "|---|---|" + "---|" * len(matrices)]
    for name in dict.fromkeys(r.preset for r in results):
        first = next(r for r in results if r.preset == name)
        vals = [cell[(name, m)].probability if (name, m) in cell else None for m in matrices]
        lines.append(f"| {name} | {first.finding} | "
                     + " | ".join("-" if v is None else f"{v:.2f}" for v in vals) + " |")
    for m in matrices:
        missed = [r.preset for r in results if r.matrix == m
                  and (r.probability is None or r.probability < 0.5)]
        lines.append(f"\nmissed at {m}: {', '.join(missed) or 'none'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--matrix", type=int, nargs="+", default=[160, 256, 512])
    ap.add_argument("--presets", nargs="+", default=list(ASSESSED_PRESETS))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    settings = AnalyzerSettings()
    results = []
    for name in args.presets:
        for m in args.matrix:
            results.append(run_preset(name, m, settings))
            print(f"{name} at {m}: {results[-1].probability}", file=sys.stderr, flush=True)
    print(table(results, args.matrix))


if __name__ == "__main__":
    main()
