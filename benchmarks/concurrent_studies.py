"""Benchmark: several chest CT studies sent to POST /predict at the same moment.

A PACS router flushing its queue, or three scanners finishing together, sends
studies at once; each should be answered soon, not after all the others. Two
runs of the same burst, side by side, each against a fresh API server on
loopback:

* baseline: one study analysed at a time, the analyzer's stages one after the
  other (``api.max_concurrent_jobs`` 1, ``analyzer.threads`` 1: the node before
  issue 12's fourth pass);
* candidate: the current defaults (2 studies at a time, lung and central stages
  side by side).

Studies: the real cases of ``../shared/data`` (each case folder zipped into a
temporary directory, never into the repository), else ``--phantoms`` small
phantom studies. Printed per run: each study's answer time (upload included),
the slowest, the total, and the candidate/baseline ratios.

    .venv/bin/python -m benchmarks.concurrent_studies
    .venv/bin/python -m benchmarks.concurrent_studies --phantoms 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.api_server import api_server  # noqa: E402
from tests.helpers import zip_folder  # noqa: E402

REAL_CASES = ("lidc_idri_0001", "lidc_idri_0003", "lungpetctdx_A0001")
RUNS = {
    "baseline (1 study at a time, stages in sequence)": {"max_concurrent_jobs": 1, "threads": 1},
    "candidate (defaults)": {},
}


def _studies(tmp: Path, phantoms: int) -> list[tuple[str, Path]]:
    shared = REPO.parent / "shared" / "data"
    if phantoms == 0 and all((shared / c).is_dir() for c in REAL_CASES):
        return [(c, zip_folder(shared / c, tmp / f"{c}.zip")) for c in REAL_CASES]
    from phantom import write_small_study

    out = []
    for seed in range(max(1, phantoms)):
        study = write_small_study(tmp / f"phantom{seed}", seed=seed)
        out.append((f"phantom{seed}", zip_folder(Path(study.root), tmp / f"phantom{seed}.zip")))
    return out


def run_once(label: str, overrides: dict[str, int], studies: list[tuple[str, Path]],
             tmp: Path) -> dict[str, Any]:
    import httpx

    work = tmp / f"work{len(list(tmp.glob('work*')))}"
    work.mkdir()
    env = {}
    if "max_concurrent_jobs" in overrides:
        env["CTNODE_API__MAX_CONCURRENT_JOBS"] = str(overrides["max_concurrent_jobs"])
    if "threads" in overrides:
        env["CTNODE_INFERENCE__ANALYZER__THREADS"] = str(overrides["threads"])
    with api_server(work, env) as (url, _):
        start = time.perf_counter()

        def post(item: tuple[str, Path]) -> dict[str, Any]:
            name, archive = item
            with archive.open("rb") as fh:
                r = httpx.post(f"{url}/predict", files={"file": (archive.name, fh)},
                               timeout=1800)
            return {"study": name, "status": r.status_code,
                    "answered_s": round(time.perf_counter() - start, 1)}

        with ThreadPoolExecutor(len(studies)) as pool:
            answers = list(pool.map(post, studies))
    slowest = max(a["answered_s"] for a in answers)
    return {"run": label, "answers": answers, "slowest_s": slowest,
            "mean_s": round(sum(a["answered_s"] for a in answers) / len(answers), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phantoms", type=int, default=0,
                        help="Send this many phantom studies instead of the real cases.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ctnode-burst-") as name:
        tmp = Path(name)
        studies = _studies(tmp, args.phantoms)
        print(f"{len(studies)} studies at once: {', '.join(s for s, _ in studies)}; "
              f"{os.cpu_count()} cores")
        results = [run_once(label, overrides, studies, tmp) for label, overrides in RUNS.items()]
    for r in results:
        print(json.dumps(r))
    base, cand = results
    print(f"slowest answer: {base['slowest_s']} s -> {cand['slowest_s']} s "
          f"(ratio {cand['slowest_s'] / base['slowest_s']:.2f}); mean answer: "
          f"{base['mean_s']} s -> {cand['mean_s']} s "
          f"(ratio {cand['mean_s'] / base['mean_s']:.2f})")


if __name__ == "__main__":
    main()
