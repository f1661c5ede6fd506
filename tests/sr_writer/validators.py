"""Run the external DICOM validators (dicom3tools dciodvfy, dcmtk dsrdump) for real.

They are part of the definition of done (issue 6): a machine without them fails
these tests with an install hint instead of silently skipping validation.
"""

from __future__ import annotations

import html
import re
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


def dsr2html_text(path: Path) -> str:
    """dcmtk ``dsr2html``'s rendering as plain text, one line per row, spaces squeezed.

    What a reader sees in any SR renderer: with SEPARATE containers each value
    follows its concept name ("Probability: 0.91 1"); CONTINUOUS ones run the
    bare values together.
    """
    proc = subprocess.run([_tool("dsr2html", "dcmtk"), "+U8", str(path)],
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
    text = re.sub(r"<[^>]+>", " ", proc.stdout.decode("utf-8", "replace"))
    text = re.sub(r"[ \t]+", " ", html.unescape(text))
    return re.sub(r"\n\s*\n+", "\n", text)
