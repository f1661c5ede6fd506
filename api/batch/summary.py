"""Run totals computed from the result rows: what the summary sheet and console show."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from api.batch.columns import (
    CLIENT_SECONDS,
    ERROR_CODE,
    PATHOLOGY,
    PROBABILITY,
    STATUS,
    TIME,
    Row,
    is_final,
)

HISTOGRAM_BINS = 10
PERCENTILES: tuple[int, ...] = (50, 90, 95)


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts, rates and time percentiles over every row of the output file."""

    files: int
    success: int
    failure: int  # answered with a Failure result (input unusable or node fault)
    no_answer: int  # the client got no usable answer (client_* codes): resume retries
    failures_by_code: tuple[tuple[str, int], ...]
    positives: int
    pathology_rate: float | None  # positives / success; None without a success
    processing_seconds: tuple[tuple[str, float], ...]  # time_of_processing of Success rows
    client_seconds: tuple[tuple[str, float], ...]  # upload-to-answer, every answered row
    probability_histogram: tuple[tuple[str, int], ...]  # Success rows, 10 bins over [0, 1]


def summarise(rows: Sequence[Row]) -> Summary:
    """Totals of ``rows``; an empty table gives zeros and None rates, not an error."""
    success = [r for r in rows if r[STATUS] == "Success"]
    answered_failures = [r for r in rows if r[STATUS] != "Success" and is_final(r)]
    no_answer = [r for r in rows if not is_final(r)]
    by_code = Counter(str(r[ERROR_CODE] or "unknown") for r in rows if r[STATUS] != "Success")
    positives = sum(1 for r in success if r[PATHOLOGY] == 1)
    probabilities = [float(v) for r in success if isinstance(v := r[PROBABILITY], (int, float))]
    return Summary(
        files=len(rows),
        success=len(success),
        failure=len(answered_failures),
        no_answer=len(no_answer),
        failures_by_code=tuple(sorted(by_code.items(), key=lambda kv: (-kv[1], kv[0]))),
        positives=positives,
        pathology_rate=positives / len(success) if success else None,
        processing_seconds=_percentiles(
            [float(v) for r in success if isinstance(v := r[TIME], (int, float))]),
        client_seconds=_percentiles(
            [float(v) for r in rows
             if is_final(r) and isinstance(v := r[CLIENT_SECONDS], (int, float))]),
        probability_histogram=histogram(probabilities),
    )


def histogram(values: Sequence[float], bins: int = HISTOGRAM_BINS) -> tuple[tuple[str, int], ...]:
    """Counts per bin [0, 0.1), [0.1, 0.2) ... [0.9, 1.0]; the last bin includes 1.0."""
    counts, edges = np.histogram(np.asarray(values, dtype=float), bins=bins, range=(0.0, 1.0))
    labels = [f"{edges[i]:.1f}-{edges[i + 1]:.1f}" for i in range(bins)]
    return tuple(zip(labels, (int(c) for c in counts), strict=True))


def _percentiles(values: Sequence[float]) -> tuple[tuple[str, float], ...]:
    """p50/p90/p95/max/mean (linear interpolation); empty when there is nothing to measure."""
    if not values:
        return ()
    arr = np.asarray(values, dtype=float)
    stats = [(f"p{p}", float(np.percentile(arr, p))) for p in PERCENTILES]
    stats += [("max", float(arr.max())), ("mean", float(arr.mean()))]
    return tuple((name, round(v, 3)) for name, v in stats)
