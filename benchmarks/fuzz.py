"""Benchmark: the fuzzing suite run long (``tests/fuzz``, Hypothesis profile "long").

CI runs the same properties with 25 examples each; this runs ``--examples``
each (default 1000) and prints the cases run per property, the failures and
the time, next to a CI-profile run of the same suite as the baseline.

    .venv/bin/python -m benchmarks.fuzz --examples 1000
    .venv/bin/python -m benchmarks.fuzz --examples 300 --only dicom
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(profile: str, examples: int, only: str | None) -> dict[str, object]:
    """One pytest run of tests/fuzz; returns counts, failures and seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "counts.json"
        env = {**os.environ, "CTNODE_FUZZ_PROFILE": profile, "CTNODE_FUZZ_REPORT": str(report),
               "CTNODE_FUZZ_EXAMPLES": str(examples)}
        args = [sys.executable, "-m", "pytest", "tests/fuzz", "-q", "-p", "no:cacheprovider",
                "--timeout", "0"]
        if only:
            args += ["-k", only]
        t0 = time.perf_counter()
        out = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        counts = json.loads(report.read_text()) if report.exists() else {}
    failed = [line for line in out.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return {"profile": profile, "seconds": round(seconds, 1), "cases": counts,
            "total_cases": sum(counts.values()), "failures": failed,
            "summary": (out.stdout.strip().splitlines() or ["?"])[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000, help="examples per property")
    parser.add_argument("--only", help="pytest -k expression (e.g. dicom, nifti, dimse, api)")
    args = parser.parse_args()
    baseline = run("ci", 25, args.only)
    print(json.dumps(baseline, indent=1), flush=True)
    long = run("long", args.examples, args.only)
    print(json.dumps(long, indent=1), flush=True)
    ratio = long["total_cases"] / max(1, baseline["total_cases"])  # type: ignore[operator]
    print(f"\nlong run: {long['total_cases']} cases in {long['seconds']} s, "
          f"{len(long['failures'])} failing test(s); CI profile: {baseline['total_cases']} "
          f"cases in {baseline['seconds']} s (x{ratio:.0f} cases)")


if __name__ == "__main__":
    main()
