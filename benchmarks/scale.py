"""Benchmark: phantom studies through the Celery back end vs the SQLite one, 1/2/4 workers.

Each run queues the same ``--studies`` small phantom studies (96 x 96 x 60
slices, the SCP door's spool layout) and times them from the first enqueue to
the last recorded outcome, with the real ``ScpJobHandler`` (pipeline, SR + SC
writing; no destination, so jobs end ``done``):

* Celery: one ``ctnode worker`` (``jobs.backend = celery``) with ``N`` pool
  processes, against a ``redis-server`` started here (AOF, appendfsync always);
* SQLite: ``N`` worker processes, each the ``jobs.Worker`` loop ``ctnode scp``
  runs, on one queue file (processes, not threads, so both get the same CPUs).

The queue overhead per job is measured apart, on ``--instant`` jobs whose
handler returns at once (a spool folder that is gone: the job fails at its
first step), one worker: enqueue + hand-over + take + record + acknowledge.
``--sizing`` also times one clinical-size phantom (512 x 512, 1.25 mm) in one
worker process, for the sizing table of docs/scale-out.md.

    .venv/bin/python -m benchmarks.scale                      # from the repository root
    .venv/bin/python -m benchmarks.scale --studies 10 --workers 1,2 --no-sizing
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Run:
    backend: str
    workers: int
    studies: int
    wall_s: float
    analysis_s: list[float]
    states: dict[str, int]

    @property
    def per_hour(self) -> float:
        return self.studies / self.wall_s * 3600.0


def _write_study(args: tuple[Path, int]) -> tuple[str, str]:
    from phantom.quick import write_small_study

    out, seed = args
    study = write_small_study(out, seed=seed, matrix=96, n_slices=60)
    return study.study_uid, str(study.root)


def write_studies(spool: Path, n: int) -> list[tuple[str, str]]:
    with ProcessPoolExecutor(2) as pool:
        return list(pool.map(_write_study, [(spool / f"study-{i:03d}", 100 + i)
                                            for i in range(n)]))


def _env(work: Path, redis_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTNODE_")}
    env.update({"PYTHONPATH": str(REPO), "CTNODE_NODE__WORK_DIR": str(work),
                "CTNODE_LOG_LEVEL": "WARNING",
                # A study that fails (a broken build) ends the run instead of backing off.
                "CTNODE_SCP__DELIVERY_MAX_ATTEMPTS": "2", "CTNODE_SCP__DELIVERY_BACKOFF_S": "1"})
    if redis_url:
        env.update({"CTNODE_JOBS__BACKEND": "celery", "CTNODE_JOBS__BROKER_URL": redis_url})
    return env


def _settings(work: Path, redis_url: str | None):  # type: ignore[no-untyped-def]
    from ctnode.settings import Settings

    jobs = {"backend": "celery", "broker_url": redis_url} if redis_url else {}
    return Settings(node={"work_dir": work}, jobs=jobs)


def start_workers(backend: str, n: int, work: Path, redis_url: str | None,
                  ) -> list[subprocess.Popen[bytes]]:
    """Start the workers of one run and wait until each is ready."""
    work.mkdir(parents=True, exist_ok=True)
    procs = []
    if backend == "celery":
        cmd = [[sys.executable, "-c", "from ctnode.cli import main; main()", "worker",
                "--workers", str(n), "--hostname", "bench@%h"]]
        env = {**_env(work, redis_url), "CTNODE_LOG_LEVEL": "INFO"}  # to see "ready"
    else:
        cmd = [[sys.executable, "-m", "benchmarks.scale", "--sqlite-worker", str(work)]] * n
        env = _env(work, None)
    logs = []
    for i, argv in enumerate(cmd):
        log = work / f"worker-{i}.log"
        logs.append(log)
        procs.append(subprocess.Popen(argv, cwd=work, env=env, stdout=log.open("wb"),
                                      stderr=subprocess.STDOUT, start_new_session=True))
    deadline = time.monotonic() + 180
    while not all("ready" in log.read_text(errors="replace") for log in logs):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            stop_workers(procs)
            raise RuntimeError(f"{backend} workers did not start: see {work}")
        time.sleep(0.2)
    return procs


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if p.poll() is None:
            p.wait(10)


def run_batch(backend: str, n: int, studies: list[tuple[str, str]], work: Path,
              redis_url: str | None) -> Run:
    """Queue every study, wait until each has an outcome; the workers are already running."""
    from jobs import make_queue

    if redis_url:
        import redis

        redis.Redis.from_url(redis_url).flushall()
    queue = make_queue(_settings(work, redis_url))
    procs = start_workers(backend, n, work, redis_url)
    try:
        t0 = time.perf_counter()
        ids = [queue.enqueue(uid, "scp", root, f"bench-{n}", 177)[0].id for uid, root in studies]
        while True:
            counts = queue.counts()
            if counts["queued"] == 0 and counts["running"] == 0:
                break
            time.sleep(0.1)
        wall = time.perf_counter() - t0
    finally:
        stop_workers(procs)
    analysis = []
    for job_id in ids:
        outputs = work / "scp_results" / f"job-{job_id}" / "outputs.json"
        if outputs.exists():
            analysis.append(json.loads(outputs.read_text())["analysis_seconds"])
    states = {k: v for k, v in queue.counts().items() if v}
    queue.close()
    return Run(backend, n, len(studies), wall, analysis, states)


def instant_overhead(backend: str, n_jobs: int, work: Path, redis_url: str | None) -> float:
    """Seconds per job whose handler returns at once, through one worker."""
    from jobs import make_queue

    if redis_url:
        import redis

        redis.Redis.from_url(redis_url).flushall()
    queue = make_queue(_settings(work, redis_url))
    procs = start_workers(backend, 1, work, redis_url)
    try:
        t0 = time.perf_counter()
        for i in range(n_jobs):
            queue.enqueue(f"9.9.{i}", "scp", str(work / "gone"), "h", 1)
        while queue.counts()["failed"] < n_jobs:
            time.sleep(0.02)
        return (time.perf_counter() - t0) / n_jobs
    finally:
        stop_workers(procs)
        queue.close()


def enqueue_cost(n_jobs: int, work: Path, redis_url: str | None) -> float:
    """Producer side alone: seconds per enqueue (no worker running)."""
    from jobs import make_queue

    if redis_url:
        import redis

        redis.Redis.from_url(redis_url).flushall()
    work.mkdir(parents=True, exist_ok=True)
    queue = make_queue(_settings(work, redis_url))
    queue.enqueue("8.8.0", "scp", "x", "warm", 1)  # connections, Celery app
    t0 = time.perf_counter()
    for i in range(1, n_jobs + 1):
        queue.enqueue(f"8.8.{i}", "scp", "x", "h", 1)
    cost = (time.perf_counter() - t0) / n_jobs
    queue.close()
    return cost


def sizing(tmp: Path) -> float:
    """Seconds of one clinical-size study (512 x 512, 1.25 mm) in one worker process."""
    code = (
        "import sys, time, json; from pathlib import Path\n"
        "from phantom.generate import generate_phantom\n"
        "from phantom.dicom_writer import write_dicom_study\n"
        "from phantom.types import PhantomSpec\n"
        "from jobs import SqliteJobQueue, Worker\n"
        "from ctnode.settings import Settings\n"
        "from scp_node.handler import ScpJobHandler\n"
        "from scp_node.node import worker_settings\n"
        "tmp = Path(sys.argv[1]); s = Settings(node={'work_dir': tmp / 'var'})\n"
        "study = write_dicom_study(generate_phantom(PhantomSpec(seed=7, matrix=512, "
        "fov_mm=380.0, slice_spacing_mm=1.25)), tmp / 'big')\n"
        "import inference.pipeline, sr_writer\n"
        "q = SqliteJobQueue(tmp / 'q.sqlite3'); q.enqueue(study.study_uid, 'scp', "
        "str(study.root), 'h', 1)\n"
        "w = Worker(q, ScpJobHandler(s), worker_settings(s.scp))\n"
        "t = time.perf_counter(); job = w.run_once(); dt = time.perf_counter() - t\n"
        "print(json.dumps({'seconds': dt, 'state': job.state.value}))\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp)], cwd=REPO, check=True,
                         capture_output=True, text=True,
                         env={**_env(tmp, None), "CTNODE_LOG_LEVEL": "ERROR"})
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["state"] != "done":
        raise RuntimeError(f"the sizing study ended {result['state']}")
    return float(result["seconds"])


def sqlite_worker(work: Path) -> None:
    """One SQLite worker process: the ``jobs.Worker`` loop of ``ctnode scp``, SCP handler."""
    import threading

    import inference.pipeline  # noqa: F401  (imported before "ready", like the Celery parent)
    import sr_writer  # noqa: F401
    from jobs import SqliteJobQueue, Worker, default_queue_path
    from scp_node.handler import ScpJobHandler
    from scp_node.node import worker_settings

    settings = _settings(work, None)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    queue = SqliteJobQueue(default_queue_path(work))
    worker = Worker(queue, ScpJobHandler(settings), worker_settings(settings.scp), stop=stop)
    print("ready", flush=True)
    worker.run()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--studies", type=int, default=40)
    p.add_argument("--workers", default="1,2,4")
    p.add_argument("--instant", type=int, default=100)
    p.add_argument("--sizing", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--sqlite-worker", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.sqlite_worker:
        sqlite_worker(a.sqlite_worker)
        return
    from tests.jobs.redis_server import RedisServer

    counts = [int(x) for x in a.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="ctnode-scale-") as tmp_name:
        tmp = Path(tmp_name)
        t = time.perf_counter()
        studies = write_studies(tmp / "spool", a.studies)
        print(f"{len(studies)} phantom studies written in {time.perf_counter() - t:.0f} s; "
              f"{os.cpu_count()} CPU(s)", flush=True)
        server = RedisServer(tmp / "redis").start()
        try:
            runs: list[Run] = []
            for n in counts:  # alternate back ends so both see the same machine load
                for backend in ("sqlite", "celery"):
                    url = server.url if backend == "celery" else None
                    run = run_batch(backend, n, studies, tmp / f"{backend}-{n}", url)
                    runs.append(run)
                    print(f"  {backend:<6} {n} worker(s): {run.wall_s:6.1f} s, "
                          f"{run.per_hour:6.0f} studies/h, {run.states}", flush=True)
            overhead = {b: instant_overhead(b, a.instant, tmp / f"instant-{b}",
                                            server.url if b == "celery" else None)
                        for b in ("sqlite", "celery")}
            enqueue = {b: enqueue_cost(a.instant, tmp / f"enqueue-{b}",
                                       server.url if b == "celery" else None)
                       for b in ("sqlite", "celery")}
        finally:
            server.stop()
        big = sizing(tmp / "sizing") if a.sizing else None

    print(f"\n{a.studies} phantom studies (96x96x60), ScpJobHandler, no destination\n")
    print("| back end | workers | wall (s) | studies/h | mean analysis (s/study) "
          "| speed-up vs 1 | Celery / SQLite |")
    print("|---|---|---|---|---|---|---|")
    by = {(r.backend, r.workers): r for r in runs}
    for r in runs:
        base = by.get((r.backend, counts[0]))
        other = by.get(("sqlite", r.workers))
        ratio = f"{r.per_hour / other.per_hour:.2f}" if r.backend == "celery" and other else "-"
        mean_a = statistics.fmean(r.analysis_s) if r.analysis_s else float("nan")
        speed = r.per_hour / base.per_hour if base else float("nan")
        print(f"| {r.backend} | {r.workers} | {r.wall_s:.1f} | {r.per_hour:.0f} | "
              f"{mean_a:.2f} | {speed:.2f} | {ratio} |")
    print(f"\nqueue overhead per job ({a.instant} instant jobs, 1 worker): "
          + ", ".join(f"{b} {1000 * s:.1f} ms" for b, s in overhead.items())
          + f"  (Celery / SQLite {overhead['celery'] / overhead['sqlite']:.2f})")
    print("enqueue per job (producer only): "
          + ", ".join(f"{b} {1000 * s:.2f} ms" for b, s in enqueue.items()))
    for r in runs:
        if r.analysis_s:
            per_job = r.wall_s * r.workers / r.studies - statistics.fmean(r.analysis_s)
            print(f"  {r.backend} {r.workers} worker(s): wall x workers / study - analysis = "
                  f"{per_job:.2f} s (waiting for a CPU, queue, result writing)")
    if big is not None:
        print(f"\nclinical-size phantom (512x512, 1.25 mm) in one worker: {big:.1f} s "
              f"-> {3600 / big:.0f} studies/h per CPU worker process")


if __name__ == "__main__":
    main()
