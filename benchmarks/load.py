"""Benchmark: 20 concurrent clients against POST /predict on loopback (Locust, headless).

Two runs of the same load, side by side: the baseline lets every request wait
(``api.max_waiting_requests`` 1000: queueing without bound, as before issue
15), the candidate uses the setting under test (default 4): requests beyond
it are shed at once with 503 + Retry-After. Clients behave like the batch
client: a 503 waits Retry-After (at most 10 s) before the next request.
After the load time no new request starts, and those in flight (queued ones
included) are waited for and counted. Printed per run: requests, analysed
(2xx-4xx answers), shed (503), errors
(5xx other than 503, connection errors), latency percentiles of the analysed
requests and of the shed ones, and the server's peak RSS.

    .venv/bin/python -m benchmarks.load --users 20 --seconds 60
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.api_server import api_server  # noqa: E402
from tests.helpers import zip_folder  # noqa: E402

LOCUSTFILE = '''
from locust import HttpUser, constant, task

STUDY = open({study!r}, "rb").read()


class Client(HttpUser):
    wait_time = constant(0)

    @task
    def predict(self):
        with self.client.post("/predict", files={{"file": ("study.zip", STUDY,
                              "application/zip")}}, catch_response=True,
                              name="/predict") as r:
            if r.status_code == 503:
                r.request_meta["name"] = "/predict shed (503)"
                r.success()
                self.wait_s = min(10.0, float(r.headers.get("Retry-After", "1")))
                import gevent
                gevent.sleep(self.wait_s)
            elif r.status_code >= 500 or r.status_code == 0:
                r.failure(f"status {{r.status_code}}")
            else:
                r.success()
'''


def _study(folder: Path) -> Path:
    from phantom import write_small_study

    study = write_small_study(folder / "study", seed=0)
    return zip_folder(Path(study.root), folder / "study.zip")


def _hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) * 1024 / 1e6
    return 0.0


def run_once(label: str, waiting: int, users: int, seconds: int, study: Path,
             tmp: Path) -> dict[str, Any]:
    work = tmp / label
    work.mkdir()
    with api_server(work, {"CTNODE_API__MAX_WAITING_REQUESTS": str(waiting)}) as (url, server):
        locustfile = tmp / f"{label}_locustfile.py"
        locustfile.write_text(LOCUSTFILE.format(study=str(study)))
        prefix = tmp / label / "stats"
        subprocess.run([sys.executable, "-m", "locust", "-f", str(locustfile), "--headless",
                        "-u", str(users), "-r", str(users), "-t", f"{seconds}s",
                        "--host", url, "--csv", str(prefix),
                        "--only-summary", "--stop-timeout", "1200", "--loglevel", "ERROR"],
                       cwd=tmp, capture_output=True, text=True, timeout=seconds + 1800)
        peak = _hwm_mb(server.pid)
    rows = {r["Name"]: r for r in csv.DictReader(open(f"{prefix}_stats.csv"))}

    def pct(name: str) -> dict[str, Any]:
        r = rows.get(name)
        if not r or not int(r["Request Count"]):
            return {"n": 0}
        return {"n": int(r["Request Count"]), "failures": int(r["Failure Count"]),
                **{f"p{q}_s": round(float(r[f"{q}%"]) / 1000, 2) for q in (50, 90, 95, 99)},
                "max_s": round(float(r["Max Response Time"]) / 1000, 2)}

    analysed, shed = pct("/predict"), pct("/predict shed (503)")
    total = analysed.get("n", 0) + shed.get("n", 0)
    return {"run": label, "max_waiting_requests": waiting, "users": users, "seconds": seconds,
            "requests": total, "analysed": analysed, "shed_503": shed,
            "errors": analysed.get("failures", 0) + shed.get("failures", 0),
            "server_peak_rss_mb": round(peak)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--waiting", type=int, default=4,
                        help="api.max_waiting_requests of the candidate run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ctnode-load-") as name:
        tmp = Path(name)
        study = _study(tmp)
        print(f"study ZIP: {study.stat().st_size / 1e6:.1f} MB", flush=True)
        baseline = run_once("baseline", 1000, args.users, args.seconds, study, tmp)
        print(json.dumps(baseline, indent=1), flush=True)
        candidate = run_once("shedding", args.waiting, args.users, args.seconds, study, tmp)
        print(json.dumps(candidate, indent=1), flush=True)
    b, c = baseline["analysed"], candidate["analysed"]
    if b.get("n") and c.get("n"):
        print(f"\np95 latency of analysed requests: {c['p95_s']} s vs {b['p95_s']} s "
              f"(ratio {c['p95_s'] / max(b['p95_s'], 1e-9):.2f}); max {c['max_s']} s vs "
              f"{b['max_s']} s; shed {candidate['shed_503'].get('n', 0)} requests with 503")


if __name__ == "__main__":
    main()
