"""Start-up cost: learned models whose weights are not installed must not import torch or MONAI.

Importing torch and MONAI takes several seconds; a node that runs only
``chest_quant`` (the default without weights) must not pay for them. Each check
runs in a fresh interpreter: in this one, other tests have imported torch already.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from inference.models.learned import FAMILIES

REPO = Path(__file__).resolve().parents[2]

_BUILD_DEFAULT = """
import json, sys
from pathlib import Path
from ctnode.settings import Settings
from inference.ensemble import build_ensemble

root = Path(sys.argv[1])
settings = Settings(node={"work_dir": root / "var", "temp_dir": None},
                    weights={"directory": root / "weights"})
ensemble = build_ensemble(settings)
print(json.dumps({
    "installed": {s.name: s.weights_installed for s in ensemble.statuses},
    "imported": [m for m in ("torch", "monai") if m in sys.modules],
}))
"""

_IMPORT_REGISTRY = """
import json, sys
from inference.ensemble import MODEL_REGISTRY
from inference.models.runner import load_model_class

for spec in MODEL_REGISTRY.values():
    load_model_class(spec)
print(json.dumps([m for m in ("torch", "monai") if m in sys.modules]))
"""


def _run(script: str, *args: str) -> object:
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_default_ensemble_without_weights_imports_no_torch(tmp_path: Path) -> None:
    out = _run(_BUILD_DEFAULT, str(tmp_path))
    assert isinstance(out, dict)
    learned = set(FAMILIES) & set(out["installed"])
    assert learned, "the default ensemble lists the learned models (reported uninstalled)"
    assert not any(out["installed"][name] for name in learned)
    assert out["imported"] == []


def test_registry_classes_import_no_torch() -> None:
    """Every class the registry names is light; its network loads with its weights."""
    assert _run(_IMPORT_REGISTRY) == []
