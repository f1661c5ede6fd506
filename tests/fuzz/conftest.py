"""The fuzzing suite: bounded in CI (profile "ci"), longer in ``benchmarks/fuzz.py`` ("long").

Every property also checks what a crash would leave: how far resident memory
rose over the test (``/proc/self`` VmHWM, reset before each test, less the
resident memory at its start) and no file
left in the folders the code under test writes to. ``FUZZ_COUNTS`` counts
the cases each test ran, for the benchmark's report.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=25, deadline=None, derandomize=True, print_blob=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                           HealthCheck.data_too_large])
settings.register_profile(
    "long", max_examples=int(os.environ.get("CTNODE_FUZZ_EXAMPLES", "1000")), deadline=None,
    print_blob=True, database=None,  # failures print their reproduce blob instead
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                           HealthCheck.data_too_large])
settings.load_profile(os.environ.get("CTNODE_FUZZ_PROFILE", "ci"))

#: How far a fuzzing test may raise resident memory above where it started. Growth, not
#: the absolute peak: an xdist worker also holds what earlier tests cached (the real
#: cases' analyses, ``tests.conftest.real_analysis``), which is not this test's doing.
MAX_RSS_GROWTH_BYTES = 1_000_000_000
FUZZ_COUNTS: Counter[str] = Counter()


def count_case(name: str) -> None:
    FUZZ_COUNTS[name] += 1


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


@pytest.fixture(autouse=True)
def bounded_memory() -> Iterator[None]:
    """Fail a fuzzing test that raised resident memory by more than ``MAX_RSS_GROWTH_BYTES``
    (a mutated header that makes the code allocate for a huge image, say)."""
    clear = Path("/proc/self/clear_refs")
    try:
        clear.write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    except OSError:
        pass
    start = _status_kb("VmRSS")
    yield
    growth = _status_kb("VmHWM") - start
    assert growth < MAX_RSS_GROWTH_BYTES, f"resident memory rose by {growth / 1e6:.0f} MB"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get("CTNODE_FUZZ_REPORT")
    if target:
        Path(target).write_text(json.dumps(dict(FUZZ_COUNTS), indent=2))
