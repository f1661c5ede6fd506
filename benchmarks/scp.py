"""Benchmark: receiving a ~1,000-instance CT study from dcmtk ``storescu`` over loopback.

Our SCP (``ctnode scp``, spooling to disk) against dcmtk ``storescp`` writing to
disk (as installed, and with its ``TCP_NODELAY=1`` switch), in the same run on
the same machine, alternating runs so all see the same load. The sender is
the same plain ``storescu`` every time. The figure is the ratio of instances
per second (ours / dcmtk).

    .venv/bin/python -m benchmarks.scp --instances 1000 --repeats 2   # from the repository root

One association carries the whole study (as a modality sends it), so per-
instance latency rather than bandwidth bounds it (see DICOM-NOTES.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from pydicom.uid import generate_uid

from tests.helpers import ct_slice, free_port, stop_process, wait_for

REPO = Path(__file__).resolve().parents[1]


def write_study(out_dir: Path, n: int, size: int) -> int:
    """``n`` axial CT slices of ``size``² int16 pixels; returns the total bytes written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    rng = np.random.default_rng(0)
    total = 0
    for i in range(n):
        pixels = rng.integers(-1024, 2000, (size, size), dtype=np.int16)
        ds = ct_slice(pixels, study_uid=study, series_uid=series, frame_uid=frame,
                      instance_number=i + 1, position=[0.0, 0.0, -1.0 * i], pixel_mm=0.7,
                      thickness_mm=1.0, PatientName="Bench^Mark", PatientID="BENCH")
        path = out_dir / f"IM{i:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        total += path.stat().st_size
    return total


def echo_ok(port: int) -> bool:
    return subprocess.run(["echoscu", "127.0.0.1", str(port)], capture_output=True).returncode == 0


def wait_echo(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    def answered() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"receiver exited with {proc.returncode}")
        return echo_ok(port)

    wait_for(answered, timeout, "the receiver to answer C-ECHO", every=0.2)


@contextlib.contextmanager
def ours(work: Path, port: int) -> Iterator[Path]:
    """``ctnode scp`` with no study going stable during the run (no analysis competes)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTNODE_")}
    env.update({
        "PYTHONPATH": str(REPO),
        "CTNODE_NODE__WORK_DIR": str(work),
        "CTNODE_LOG_LEVEL": "WARNING",
        "CTNODE_SCP": json.dumps({"port": port, "stable_seconds": 3600, "min_free_mb": 0}),
    })
    proc = subprocess.Popen(
        [sys.executable, "-c", "from ctnode.cli import main; main()", "scp"],
        cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_echo(port, proc)
        yield work / "spool"
    finally:
        stop_process(proc, timeout=30)


@contextlib.contextmanager
def dcmtk(work: Path, port: int, nodelay: bool = False) -> Iterator[Path]:
    """dcmtk ``storescp -od`` (files on disk); ``nodelay``: its TCP_NODELAY=1 switch."""
    out = work / "storescp"
    out.mkdir(parents=True)
    env = dict(os.environ, TCP_NODELAY="1") if nodelay else {
        k: v for k, v in os.environ.items() if k != "TCP_NODELAY"}
    proc = subprocess.Popen(["storescp", "-od", str(out), str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_echo(port, proc)
        yield out
    finally:
        stop_process(proc, timeout=30)


def send(study: Path, port: int) -> float:
    t0 = time.perf_counter()
    subprocess.run(["storescu", "+sd", "-nh", "127.0.0.1", str(port), str(study)],
                   check=True, capture_output=True)
    return time.perf_counter() - t0


def count_files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--size", type=int, default=128, help="rows = columns (128: ~32 KB)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    for tool in ("storescu", "storescp", "echoscu"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} (dcmtk) is required")
    root = Path(tempfile.mkdtemp(prefix="ctnode-bench-scp-"))
    try:
        study = root / "study"
        nbytes = write_study(study, args.instances, args.size)
        print(f"study: {args.instances} instances, {nbytes / 1e6:.1f} MB "
              f"({nbytes / args.instances / 1024:.0f} KB each)")
        receivers = {
            "ours": ours,
            "dcmtk": dcmtk,
            "dcmtk+nodelay": lambda work, port: dcmtk(work, port, nodelay=True),
        }
        times: dict[str, list[float]] = {name: [] for name in receivers}
        for rep in range(args.repeats):
            for name, receiver in receivers.items():
                work = root / f"{name}{rep}"
                work.mkdir()
                port = free_port()
                with receiver(work, port) as out:
                    seconds = send(study, port)
                    received = count_files(out)
                if received != args.instances:
                    sys.exit(f"{name}: received {received} of {args.instances} instances")
                times[name].append(seconds)
                print(f"  run {rep + 1} {name:<13}: {seconds:6.2f} s  "
                      f"{args.instances / seconds:7.1f} inst/s  {nbytes / seconds / 1e6:6.2f} MB/s")
                shutil.rmtree(work)
        best = {name: min(ts) for name, ts in times.items()}
        for name, seconds in best.items():
            print(f"{name:<13} best {seconds:6.2f} s (median "
                  f"{statistics.median(times[name]):.2f}): {args.instances / seconds:7.1f} "
                  f"instances/s, {nbytes / seconds / 1e6:6.2f} MB/s")
        print(f"ratio ours/dcmtk storescp (instances/s, best runs): "
              f"{best['dcmtk'] / best['ours']:.2f}")
        print(f"ratio ours/dcmtk storescp with TCP_NODELAY=1: "
              f"{best['dcmtk+nodelay'] / best['ours']:.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
