"""Fit the analyzer's data-driven constants on a labelled phantom set, and print them.

``python -m evaluation.fit --cases 60 --seed 101 --matrix 128 256`` generates that
many cases of the gap-free cohort (``phantom.cohort``; seed disjoint from the
evaluation's seed 0) at each matrix size, analyses each as a patient's volume, and
fits by maximum likelihood on all of them together:

- ``nodules.SHAPE_MODEL``: logistic regression of "the candidate lies on an
  inserted nodule or mass of >= 4 mm" on its hilar weight, with the isolation
  and elongation terms fixed by physics as an offset and the intercept weighed
  by ``nodules.vessel_share`` of the candidate's inscribed diameter (literature,
  not fitted), over every candidate that
  passes the contact and size gates at p >= 0.5 (the gates have a physical
  basis and are not fitted). Candidates on inserted ground glass,
  consolidation or nodules < 4 mm are left out (neither class).
- The opacity and consolidation rules (``mapping``): a one-variable logistic
  regression of the reference (``phantom.cohort.reference``) on
  ln(1 + largest region in ml); threshold = the volume at p = 0.5, scale =
  1 / slope.

The constants in the code are these numbers; the constants table in
``docs/models.md`` states the set they were fitted on. Real cases are never
used to fit: they are the held-out check (``ctnode evaluate --cases DIR``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
from typing import Any

import numpy as np

from ctnode.settings import AnalyzerSettings

logger = logging.getLogger(__name__)


RIDGES = (0.01, 0.1, 0.3, 1.0)
"""L2 penalties tried on the slopes (ridge logistic regression): a penalty keeps a
coefficient finite where the labelled set separates (no training nodule lies near a
hilum, so the unpenalised hilum coefficient runs to minus infinity)."""


def logistic_fit(x: np.ndarray, y: np.ndarray, ridge: float = 0.0,
                 offset: np.ndarray | None = None, iterations: int = 100,
                 base: np.ndarray | None = None) -> np.ndarray:
    """Maximum-likelihood logistic regression (Newton-Raphson / IRLS), optionally ridged.

    ``x`` (n, k) without the intercept column; returns (intercept, k slopes).
    ``ridge`` penalises the slopes (not the intercept); a tiny 1e-6 always keeps the
    Hessian invertible. ``offset`` is a fixed term of the linear predictor (a part of
    the model that is not fitted). ``base`` (default all ones) is what the intercept
    multiplies per row: the shape model weighs it by ``nodules.vessel_share``.
    """
    ones = np.ones(len(x)) if base is None else np.asarray(base, dtype=float)
    xa = np.column_stack([ones, np.asarray(x, dtype=float)])
    off = np.zeros(len(xa)) if offset is None else np.asarray(offset, dtype=float)
    beta = np.zeros(xa.shape[1])
    pen = np.full(xa.shape[1], ridge + 1e-6)
    pen[0] = 1e-6
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(xa @ beta + off, -40, 40)))
        w = p * (1.0 - p)
        hess = xa.T @ (xa * w[:, None]) + np.diag(pen)
        step = np.linalg.solve(hess, xa.T @ (y - p) - pen * beta)
        beta += step
        if float(np.abs(step).max()) < 1e-8:
            break
    return beta


def collect(n_cases: int, seed: int, settings: AnalyzerSettings, matrix: int = 128
            ) -> dict[str, Any]:
    """Candidate features and per-case region volumes with their labels."""
    from evaluation.phantom_eval import HEADER_KERNEL, sharpen
    from inference.analyzer import analyze
    from inference.analyzer.evaluation import phantom_volume
    from inference.analyzer.nodules import (
        CONTACT_LIMIT,
        extended_lungs,
        lesion_candidates,
    )
    from phantom import generate_phantom
    from phantom.cohort import NODULE_MIN_MM, reference, sample_cohort

    cand: list[list[float]] = []
    labels: list[int] = []
    regions: list[dict[str, Any]] = []
    for case in sample_cohort(n_cases, seed, matrix):
        ph = generate_phantom(case.spec)
        if case.kernel == "sharp":
            ph = dataclasses.replace(ph, hu=sharpen(ph.hu))
        truth = ph.truth
        try:
            a = analyze(phantom_volume(ph, HEADER_KERNEL[case.kernel], case.spec.kvp), settings)
        except Exception as exc:  # noqa: BLE001 - a failed case adds nothing to fit on
            logger.warning("case %d failed: %s", case.index, exc)
            continue
        ref = reference(truth)
        regions.append({"opacity": a.value("opacity_largest"),
                        "consolidation": a.value("consolidation_largest"),
                        "ref_opacity": ref["lung_opacity"] == "present",
                        "ref_consolidation": ref["consolidation"] == "present"})
        nods = [(np.asarray(e["center_lps_mm"]), float(e["diameter_mm"]))
                for e in truth["lesions"] if e["type"] == "nodule"]
        blobs = [(np.asarray(e["center_lps_mm"]), float(e["extent_mm"]))
                 for e in truth["lesions"] if e["type"] in ("ground_glass", "consolidation")]
        ext = extended_lungs(a.anatomy, a.grid.spacing_zyx)
        for les, f in lesion_candidates(a.grid, a.anatomy, settings, ext):
            if f.contact < CONTACT_LIMIT or f.mean_diameter_mm < f.min_diameter_mm:
                continue
            c = np.asarray(a.grid.to_lps(*les.centre))
            on = [d for ctr, d in nods if np.linalg.norm(c - ctr) <= max(d / 2.0, 3.0)]
            if on and max(on) >= NODULE_MIN_MM:
                y = 1
            elif on or any(np.linalg.norm(c - b) <= ext_mm / 2.0 for b, ext_mm in blobs):
                continue  # small nodule or an opacity region: neither class
            else:
                y = 0
            cand.append([f.isolation, math.log(max(f.axis_ratio, 1.0)), f.hilar_weight,
                         f.inscribed_mm])
            labels.append(y)
        logger.info("case %d: %d candidates so far (%d positive)", case.index, len(labels),
                    sum(labels))
    return {"candidates": cand, "labels": labels, "regions": regions}


def _cv_deviance(x: np.ndarray, y: np.ndarray, off: np.ndarray, ridge: float,
                 folds: int = 5, base: np.ndarray | None = None) -> float:
    """Deviance of ``folds``-fold cross-validated predictions (random folds, seed 0)."""
    idx = np.random.default_rng(0).permutation(len(y))
    ones = np.ones(len(y)) if base is None else base
    dev = 0.0
    for f in range(folds):
        test = idx[f::folds]
        train = np.setdiff1d(idx, test)
        b = logistic_fit(x[train], y[train], ridge, off[train], base=ones[train])
        z = b[0] * ones[test] + x[test] @ b[1:] + off[test]
        p = np.clip(1.0 / (1.0 + np.exp(-z)), 1e-9, 1 - 1e-9)
        dev -= 2.0 * float(np.sum(y[test] * np.log(p) + (1 - y[test]) * np.log(1 - p)))
    return dev


def fit(data: dict[str, Any]) -> dict[str, Any]:
    """The fitted constants from ``collect``'s output.

    The shape model's isolation and elongation terms are fixed by physics
    (``nodules.physics_logit``) and enter as an offset; the intercept and the hilum
    term are fitted, with the ridge penalty of lowest 5-fold
    cross-validated deviance among ``RIDGES``.
    """
    from inference.analyzer.nodules import physics_logit, vessel_share

    x = np.asarray(data["candidates"], dtype=float)
    y = np.asarray(data["labels"], dtype=float)
    off = np.array([physics_logit(iso, math.exp(lr)) for iso, lr, *_ in x])
    base = np.array([vessel_share(d) for d in x[:, 3]])
    feats = x[:, 2:3]
    devs = {r: _cv_deviance(feats, y, off, r, base=base) for r in RIDGES}
    ridge = min(devs, key=lambda r: devs[r])
    shape = logistic_fit(feats, y, ridge, off, base=base)
    out: dict[str, Any] = {
        "shape_model": [round(float(b), 2) for b in shape], "ridge": ridge,
        "cv_deviance": {str(k): round(v, 1) for k, v in devs.items()},
        "n_candidates": int(len(y)), "n_positive": int(y.sum()),
    }
    for name in ("opacity", "consolidation"):
        rows = [(r[name], r[f"ref_{name}"]) for r in data["regions"] if r[name] is not None]
        v = np.log1p(np.maximum([r[0] for r in rows], 0.0))
        t = np.asarray([float(r[1]) for r in rows])
        b0, b1 = logistic_fit(v[:, None], t)
        out[name] = {"threshold_ml": round(float(math.expm1(-b0 / b1)), 1),
                     "log_scale": round(float(1.0 / b1), 2),
                     "n_cases": len(rows), "n_present": int(t.sum())}
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=60)
    ap.add_argument("--seed", type=int, default=101)
    ap.add_argument("--matrix", type=int, nargs="+", default=[128],
                    help="phantom matrices, each cohort analysed at every one (128: 2.7 mm "
                         "pixels; 256: 1.35 mm; both full-resolution work grids)")
    ap.add_argument("--save", help="also write the collected features (JSON)")
    ap.add_argument("--load", help="fit features collected before (JSON) instead")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.load:
        with open(args.load, encoding="utf-8") as fh:
            data = json.load(fh)
    else:
        parts = [collect(args.cases, args.seed, AnalyzerSettings(), m) for m in args.matrix]
        data = {k: [row for part in parts for row in part[k]] for k in parts[0]}
    if args.save:
        with open(args.save, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
    print(json.dumps({"cases": args.cases, "seed": args.seed, "matrix": args.matrix,
                      **fit(data)}, indent=2))


if __name__ == "__main__":
    main()
