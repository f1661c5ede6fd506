"""Benchmark: the hostile-input probes of issue 15, peak memory and disk, two trees side by side.

Each probe runs the real door in a fresh process of the code tree under test
(``ctnode serve`` on a loopback port, or the SCP node, or the pipeline) and
reads that process's peak resident memory (``VmHWM``) and the bytes it wrote
to storage (``write_bytes`` of ``/proc/<pid>/io``) after the answer.

    .venv/bin/python -m benchmarks.probes --before /tmp/before --scale 0.35
    .venv/bin/python -m benchmarks.probes --fit     # the memory-estimate fit (budget.py)

``--before`` names an unpacked copy of an older commit (``git archive HEAD |
tar -x -C DIR``); without it only the working tree is probed. ``--scale``
shrinks the original probe sizes (1.5 GB inflation, 300 MB body, ...) so a
"before" run fits a shared machine; the memory then scales with it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fuzz.hostile import (  # noqa: E402
    write_deflated_ct,
    write_multipart_body,
    write_nifti_gz_bomb,
    write_nifti_header_only,
    write_zip_bomb,
)
from tests.helpers import free_port, stop_process, wait_for  # noqa: E402

MB = 1e6


def _proc_stats(pid: int) -> tuple[float, float]:
    """(peak RSS MB, MB written to storage) of a live process."""
    status = Path(f"/proc/{pid}/status").read_text()
    hwm = next(int(line.split()[1]) for line in status.splitlines()
               if line.startswith("VmHWM")) * 1024
    io = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return hwm / MB, int(io["write_bytes"]) / MB


def _env(tree: Path, work: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTNODE_")}
    env.update({"PYTHONPATH": str(tree), "CTNODE_NODE__WORK_DIR": str(work),
                "CTNODE_LOG_LEVEL": "WARNING", **extra})
    return env


def _send(port: int, head: bytes, body: Path, timeout: float = 600) -> bytes:
    """Stream ``body`` after ``head``; stop sending as soon as an answer arrives."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head)
        s.setblocking(False)
        answer = b""
        with body.open("rb") as f:
            while chunk := f.read(1 << 20):
                try:
                    answer += s.recv(65536)
                    break  # answered before the whole body was sent
                except BlockingIOError:
                    pass
                s.setblocking(True)
                try:
                    s.sendall(chunk)
                except OSError:
                    break
                s.setblocking(False)
        s.setblocking(True)
        try:
            while part := s.recv(65536):
                answer += part
        except OSError:
            pass
    return answer


def _http_probe(tree: Path, work: Path, body: Path, ctype: str, route: str,
                extra_env: dict[str, str], headers: str = "") -> dict[str, Any]:
    port = free_port()
    code = ("import uvicorn; from api.app import create_app; from ctnode.settings import "
            f"get_settings; uvicorn.run(create_app(get_settings()), port={port}, "
            "log_level='warning')")
    proc = subprocess.Popen([sys.executable, "-c", code], env=_env(tree, work, **extra_env),
                            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _health(port), 90, "the API")
        base = _proc_stats(proc.pid)
        head = (f"POST {route} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {body.stat().st_size}\r\n{headers}Connection: close\r\n\r\n")
        t0 = time.perf_counter()
        answer = _send(port, head.encode(), body)
        seconds = time.perf_counter() - t0
        time.sleep(0.5)
        peak, written = _proc_stats(proc.pid)
        status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP") else "?"
        return {"status": status, "peak_rss_mb": round(peak),
                "startup_rss_mb": round(base[0]), "written_mb": round(written - base[1]),
                "seconds": round(seconds, 1)}
    finally:
        stop_process(proc)


def _health(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(12).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def _script_probe(tree: Path, work: Path, code: str, extra_env: dict[str, str] | None = None
                  ) -> dict[str, Any]:
    """Run ``code`` in the tree; it prints a JSON line; we add its own peak and writes."""
    wrapped = code + (
        "\nimport json as _j\nst=open('/proc/self/status').read()\n"
        "hwm=[int(l.split()[1]) for l in st.splitlines() if l.startswith('VmHWM')][0]*1024\n"
        "io=dict(l.split(': ') for l in open('/proc/self/io').read().splitlines())\n"
        "print(_j.dumps({'peak_rss_mb': round(hwm/1e6), "
        "'written_mb': round(int(io['write_bytes'])/1e6), **OUT}))\n")
    out = subprocess.run([sys.executable, "-c", wrapped], cwd=work, capture_output=True,
                         env=_env(tree, work, **(extra_env or {})), text=True, timeout=1800)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {"status": "crash: " + (out.stderr.strip().splitlines() or ["?"])[-1][:80]}
    return json.loads(lines[-1])


SCP_CODE = """
import json, threading, time
from pathlib import Path
from pydicom.uid import DeflatedExplicitVRLittleEndian
from pynetdicom import AE, _config
from ctnode.settings import Settings
from jobs import JobOutcome, JobState
from scp_node.node import ScpNode
s = Settings(node={{"work_dir": Path("var")}}, scp={{"port": {port}, "stable_seconds": 3600,
             "min_free_mb": 0}})
node = ScpNode(s, handler=lambda j, c: JobOutcome(JobState.DONE, "-"))
node.start()
_config.STORE_SEND_CHUNKED_DATASET = True
ae = AE(ae_title="PROBE"); ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2",
                                                     [DeflatedExplicitVRLittleEndian])
assoc = ae.associate("127.0.0.1", {port}, ae_title="CTNODE")
st = assoc.send_c_store(Path("{path}")); assoc.release(); node.stop()
OUT = {{"status": hex(st.Status) if st else "no answer"}}
"""

PIPE_CODE = """
from pathlib import Path
from ctnode.settings import Settings
from inference.pipeline import run_pipeline
r = run_pipeline(Path("{path}"), Settings(node={{"work_dir": Path("var")}}))
OUT = {{"status": r.error_code or r.status.value}}
"""


def probes(scale: float, data: Path) -> list[tuple[str, Callable[[Path, Path], dict[str, Any]]]]:
    """(name, run(tree, work)) for every probe, inputs written once into ``data``."""
    inflated = int(1.5e9 * scale)
    deflated = write_deflated_ct(data / "deflated.dcm", inflated)
    zipped = data / "deflated.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.write(deflated, "IM0001")
    form, ctype = _form(data / "deflated.form", zipped)
    big_body, big_ctype = write_multipart_body(data / "big.form", int(300e6 * scale))
    nii_small = write_nifti_header_only(data / "huge.nii.gz", (1400, 1400, 560))
    side = round((1.05e9 * scale) ** (1 / 3))
    nii_bomb = write_nifti_gz_bomb(data / "bomb.nii.gz", (side, side, side))
    zip_bomb = write_zip_bomb(data / "bomb.zip", int(1.0e9 * scale))
    zip_form, _ = _form(data / "bomb.form", zip_bomb)

    def http(body: Path, ct: str, route: str = "/predict", headers: str = "",
             **env: str) -> Callable[[Path, Path], dict[str, Any]]:
        return lambda tree, work: _http_probe(tree, work, body, ct, route, env, headers)

    def script(code: str) -> Callable[[Path, Path], dict[str, Any]]:
        return lambda tree, work: _script_probe(tree, work, code)

    return [
        (f"REST deflated DICOM ({deflated.stat().st_size / MB:.1f} MB -> "
         f"{inflated / 1e9:.2f} GB)", http(form, ctype)),
        (f"SCP deflated C-STORE ({inflated / 1e9:.2f} GB inflated)",
         lambda tree, work: _script_probe(tree, work, SCP_CODE.format(
             port=free_port(), path=deflated))),
        ("NIfTI header-only .nii.gz declaring 1400x1400x560",
         script(PIPE_CODE.format(path=nii_small))),
        (f"NIfTI gzip bomb ({nii_bomb.stat().st_size / MB:.1f} MB -> "
         f"{side ** 3 * 2 / 1e9:.2f} GB)", script(PIPE_CODE.format(path=nii_bomb))),
        (f"REST body {big_body.stat().st_size / MB:.0f} MB, max_upload_mb=1",
         http(big_body, big_ctype, CTNODE_API__MAX_UPLOAD_MB="1")),
        (f"REST body {big_body.stat().st_size / MB:.0f} MB, key set, none sent",
         http(big_body, big_ctype, CTNODE_API__API_KEY="k")),
        (f"REST ZIP bomb ({zip_bomb.stat().st_size / MB:.1f} MB -> {scale:.2f} GB)",
         http(zip_form, ctype)),
    ]


def _form(path: Path, payload: Path) -> tuple[Path, str]:
    boundary = "probeboundary"
    with path.open("wb") as out:
        out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                  f"filename=\"study.zip\"\r\nContent-Type: application/zip\r\n\r\n".encode())
        with payload.open("rb") as src:
            while chunk := src.read(1 << 20):
                out.write(chunk)
        out.write(f"\r\n--{boundary}--\r\n".encode())
    return path, f"multipart/form-data; boundary={boundary}"


FIT_CODE = """
import numpy as np, nibabel as nib
from pathlib import Path
from phantom import PhantomSpec, generate_phantom
from ctnode.settings import Settings
from inference.pipeline import run_pipeline, get_ensemble
ph = generate_phantom(PhantomSpec(matrix={m}, slice_spacing_mm={sp}, seed=1))
sx, sy, sz = ph.spacing; ox, oy, oz = ph.origin
aff = np.array([[-sx,0,0,-ox],[0,-sy,0,-oy],[0,0,sz,oz],[0,0,0,1]])
p = Path("v.nii"); n = int(np.prod(ph.hu.shape))
nib.save(nib.Nifti1Image(np.ascontiguousarray(ph.hu.transpose(2,1,0)).astype(np.int16), aff), p)
del ph
s = Settings(node={{"work_dir": Path("var")}})
get_ensemble(s)
import gc; gc.collect(); open('/proc/self/clear_refs','w').write('5')
base = [int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS')][0]*1024
r = run_pipeline(p, s)
hwm = [int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')][0]*1024
OUT = {{"voxels": n, "over_baseline_gb": round((hwm - base) / 1e9, 3),
        "status": r.status.value}}
"""


def fit() -> None:
    """Peak memory of a pipeline run over the baseline, for three phantom sizes."""
    from series_selector.budget import estimate_bytes

    for matrix, spacing in ((160, 2.5), (256, 1.25), (384, 1.0)):
        with tempfile.TemporaryDirectory() as work:
            row = _script_probe(REPO, Path(work), FIT_CODE.format(m=matrix, sp=spacing))
        if "voxels" in row:
            row["estimate_gb"] = round(estimate_bytes(row["voxels"], nifti=True) / 1e9, 3)
        print(json.dumps({"matrix": matrix, "slice_mm": spacing, **row}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="an unpacked older tree to compare")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of probe sizes")
    parser.add_argument("--fit", action="store_true", help="only the memory-estimate fit")
    parser.add_argument("--only", help="run only the probes whose name contains this")
    args = parser.parse_args()
    if args.fit:
        fit()
        return
    trees = ([("before", args.before.resolve())] if args.before else []) + [("after", REPO)]
    with tempfile.TemporaryDirectory(prefix="ctnode-probes-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        rows = []
        for name, run in probes(args.scale, data):
            if args.only and args.only not in name:
                continue
            row: dict[str, Any] = {"probe": name}
            for label, tree in trees:
                work = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=tmp))
                result = run(tree, work)
                row[label] = result
                print(json.dumps({"probe": name, label: result}), flush=True)
            rows.append(row)
    print("\n| probe | " + " | ".join(
        f"{t} status | {t} peak RSS MB (after start-up) | {t} written MB" for t, _ in trees)
        + " |")
    print("|---|" + "---|" * (3 * len(trees)))
    for row in rows:
        cells = []
        for label, _ in trees:
            r = row[label]
            start = f" ({r['startup_rss_mb']})" if "startup_rss_mb" in r else ""
            cells += [str(r.get("status")), f"{r.get('peak_rss_mb', '-')}{start}",
                      str(r.get("written_mb", "-"))]
        print(f"| {row['probe']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
