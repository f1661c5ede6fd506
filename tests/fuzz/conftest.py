"""The fuzzing suite: bounded in CI (profile "ci"), longer in ``benchmarks/fuzz.py`` ("long").

Every property also checks what a crash would leave: peak resident memory
over the test (``/proc/self`` VmHWM, reset before each test) and no file
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

#: Peak resident memory a fuzzing test may reach (the process's imports included).
MAX_RSS_BYTES = 1_500_000_000
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
    """Fail a fuzzing test whose peak RSS went above ``MAX_RSS_BYTES``."""
    clear = Path("/proc/self/clear_refs")
    try:
        clear.write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    except OSError:
        pass
    yield
    peak = _status_kb("VmHWM")
    assert peak < MAX_RSS_BYTES, f"peak RSS {peak / 1e6:.0f} MB"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get("CTNODE_FUZZ_REPORT")
    if target:
        Path(target).write_text(json.dumps(dict(FUZZ_COUNTS), indent=2))
