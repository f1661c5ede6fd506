"""Static checks as tests: mypy and ruff must pass on the whole repository.

Both run as subprocesses from the repository root, so they read their settings
from pyproject.toml ([tool.mypy]: the packages, the pydantic plugin,
disallow_untyped_defs; [tool.ruff]) exactly as a developer's command line does.
mypy keeps its incremental cache in the default ./.mypy_cache: a cold run (fresh
clone, CI) takes about 20 s on one core, a warm one a few seconds.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Far above a cold run; only there so a hung tool fails the test instead of the suite.
_TIMEOUT_S = 600


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
        check=False,
    )


def _fail_unless_clean(proc: subprocess.CompletedProcess[str]) -> None:
    """Fail with the tool's own output, so the report reads like the command line."""
    if proc.returncode != 0:
        pytest.fail(f"`python {' '.join(proc.args[1:])}` exited {proc.returncode}\n"
                    f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}",
                    pytrace=False)


def test_mypy_passes_on_all_packages() -> None:
    _fail_unless_clean(_run("mypy"))


def test_mypy_checks_every_installed_package() -> None:
    """A package added to setuptools' list must be type-checked too."""
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    installed = {name.rstrip("*") for name in
                 config["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert installed == set(config["tool"]["mypy"]["packages"])


def test_ruff_check_passes() -> None:
    _fail_unless_clean(_run("ruff", "check", "."))
