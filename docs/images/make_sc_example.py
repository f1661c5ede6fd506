"""Regenerate docs/images/sc_example.png: what the radiologist sees for a phantom.

Run from the repository root: ``python docs/images/make_sc_example.py``. It writes
a small synthetic chest study with two lesions (phantom package), runs the
pipeline with every registered model, writes the results and puts the summary
panel and the first two key images side by side.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image

from ctnode.commands.report import run_report
from ctnode.settings import Settings
from inference.ensemble import MODEL_REGISTRY
from phantom import write_small_study
from phantom.types import LungSite, Nodule, PleuralEffusion, Side


def main() -> int:
    out_png = Path(__file__).with_name("sc_example.png")
    with tempfile.TemporaryDirectory() as tmp:
        study = Path(tmp) / "study"
        write_small_study(study, lesions=[
            Nodule(diameter_mm=16, site=LungSite(Side.RIGHT, 0.6, 0.5, 0.6)),
            PleuralEffusion(side=Side.LEFT, volume_ml=400),
        ], seed=3)
        settings = Settings(inference={"enabled_models": list(MODEL_REGISTRY)})
        result, written = run_report(study, Path(tmp) / "out", settings)
        paths = [Path(p) for p in written["sc"]][:3]  # type: ignore[union-attr]
        images = [pydicom.dcmread(p).pixel_array for p in paths]
    gap = np.full((images[0].shape[0], 8, 3), 255, dtype=np.uint8)
    row = [part for im in images for part in (im, gap)][:-1]
    Image.fromarray(np.concatenate(row, axis=1)).save(out_png, optimize=True)
    print(f"{out_png} ({result.status.value}, probability {result.probability})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
