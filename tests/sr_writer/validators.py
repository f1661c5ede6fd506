"""Run the external DICOM validators (dicom3tools dciodvfy, dcmtk dsrdump) for real.

They are part of the definition of done (issue 6): a machine without them fails
these tests with an install hint instead of silently skipping validation.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class DciodvfyReport:
    iod: str
    errors: tuple[str, ...]
    warnings: tuple[str, ...]


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: install {package} (apt-get install {package})")
    return path


def dciodvfy(path: Path) -> DciodvfyReport:
    """dciodvfy's verdict on one file: its Error and Warning lines."""
    proc = subprocess.run([_tool("dciodvfy", "dicom3tools"), str(path)],
                          capture_output=True, text=True, timeout=60)
    lines = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    errors = tuple(ln for ln in lines if ln.startswith("Error"))
    warnings = tuple(ln for ln in lines if ln.startswith("Warning"))
    iod = lines[0] if lines else ""
    return DciodvfyReport(iod, errors, warnings)


def dsrdump(path: Path, *, utf8: bool = False) -> str:
    """dsrdump's rendering of an SR; a non-zero exit fails the test."""
    args = [_tool("dsrdump", "dcmtk")] + (["+U8"] if utf8 else []) + [str(path)]
    proc = subprocess.run(args, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
    return proc.stdout.decode("utf-8", "replace")
