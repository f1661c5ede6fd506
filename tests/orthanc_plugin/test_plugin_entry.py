"""The entry script as Orthanc loads it: system Python, no virtualenv, its folder on sys.path."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"

_SCRIPT = textwrap.dedent("""
    import json, runpy, sys, time
    repo, queue_path = sys.argv[1], sys.argv[2]
    sys.path.insert(0, repo)
    from tests.orthanc_plugin.fake_orthanc import ChangeType, FakeOrthanc
    sys.path.remove(repo)
    for name in [m for m in sys.modules if m.split(".")[0] in ("tests",)]:
        del sys.modules[name]
    fake = FakeOrthanc({"CtNode": {"RepoRoot": repo, "QueuePath": queue_path,
                                   "OwnManufacturer": "ctnode project"},
                        "AuthenticationEnabled": True, "RegisteredUsers": {"ctnode": "pw"}})
    sys.modules["orthanc"] = fake
    sys.path.insert(0, repo + "/orthanc_plugin")  # what Orthanc does
    ns = runpy.run_path(repo + "/orthanc_plugin/plugin.py", run_name="plugin")
    study = fake.add_instances("1.2.3", "1.2.3.4", ["1.2.3.4.5", "1.2.3.4.6"])
    fake.fire(ChangeType.STABLE_STUDY, study)
    for _ in range(500):
        if ns["HOST"].plugin_state()["events"]["enqueued"]:
            break
        time.sleep(0.01)
    print(json.dumps({
        "routes": [p for p, _ in fake.routes],
        "types_file": sys.modules["types"].__file__,
        "venv_modules": sorted(m for m in ("httpx", "pydantic", "numpy", "pydicom")
                               if m in sys.modules),
        "plugin_dir_on_path": any(p.rstrip("/").endswith("orthanc_plugin") for p in sys.path),
        "jobs": ns["HOST"].plugin_state()["events"]["enqueued"],
        "health": fake.rest("GET", "/ai/health").json()["jobs"],
    }))
""")


def test_entry_script_runs_on_system_python_with_stdlib_only(tmp_path: Path) -> None:
    proc = subprocess.run(
        [SYSTEM_PYTHON, "-S", "-I", "-c", _SCRIPT, str(REPO), str(tmp_path / "q" / "jobs.sqlite3")],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["routes"] == ["/ai/health", "/ai/jobs", "/ai/jobs/([0-9]+)",
                             "/ai/jobs/([0-9]+)/retry"]
    assert "orthanc_plugin" not in out["types_file"]
    assert out["venv_modules"] == []
    assert not out["plugin_dir_on_path"]
    assert out["jobs"] == 1 and out["health"]["queued"] == 1
