"""``ctnode status``: is the running node healthy, what is queued, what failed lately.

Asks the running API over HTTP (``GET /health`` and ``GET /metrics``), so it
shows the live process, not a fresh one. Exit status 0 when healthy, 1 when
not reachable or not healthy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from ctnode.settings import get_settings


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """What ``ctnode status`` shows, computed from /health and /metrics."""

    url: str
    health: str
    version: str
    models: tuple[tuple[str, str, bool], ...]  # (name, version, weights installed)
    jobs: tuple[tuple[str, int], ...]  # by state, from the shared queue
    requests_in_progress: int
    requests_by_status: tuple[tuple[str, int], ...]  # "2xx", "4xx", "5xx"
    results: tuple[tuple[str, int], ...]  # "Success", "Failure: <error_code>"
    last_errors: tuple[tuple[str, float], ...]  # (error_code, unix time), newest first
    stage_mean_seconds: tuple[tuple[str, float, int], ...]  # (stage, mean s, runs)
    queues: tuple[tuple[str, int], ...] = ()  # jobs waiting per queue (Celery) or door
    failed_jobs: tuple[tuple[int, str], ...] = ()  # (job id, reason), newest first


def node_status(url: str, health: Mapping[str, Any], metrics_text: str) -> NodeStatus:
    """Combine the two answers into one status (pure: testable without a server)."""
    from api.metrics import parse_metrics_text  # FastAPI: not for every ctnode command

    samples = parse_metrics_text(metrics_text)

    def values(name: str) -> list[tuple[dict[str, str], float]]:
        return samples.get(name, [])

    by_class: dict[str, int] = {}
    for labels, value in values("ctnode_http_requests_total"):
        if labels.get("route") == "/metrics":
            continue  # our own scrapes are not traffic
        cls = f"{labels.get('status', '?')[:1]}xx"
        by_class[cls] = by_class.get(cls, 0) + int(value)
    results: dict[str, int] = {}
    for labels, value in values("ctnode_pipeline_results_total"):
        key = labels.get("status", "?")
        if labels.get("error_code"):
            key += f": {labels['error_code']}"
        results[key] = results.get(key, 0) + int(value)
    sums = {lb["stage"]: v for lb, v in values("ctnode_pipeline_stage_duration_seconds_sum")}
    counts = {lb["stage"]: v for lb, v in values("ctnode_pipeline_stage_duration_seconds_count")}
    stages = tuple((stage, sums[stage] / counts[stage], int(counts[stage]))
                   for stage in sorted(sums) if counts.get(stage))
    last = sorted(((lb.get("error_code", "?"), v) for lb, v in
                   values("ctnode_pipeline_last_failure_timestamp_seconds")),
                  key=lambda kv: -kv[1])
    in_progress = values("ctnode_http_requests_in_progress")
    return NodeStatus(
        url=url,
        health=str(health.get("status", "unknown")),
        version=str(health.get("version", "")),
        models=tuple((str(m.get("name")), str(m.get("version")), bool(m.get("weights_installed")))
                     for m in health.get("models", []) if isinstance(m, Mapping)),
        jobs=tuple(sorted((lb.get("state", "?"), int(v)) for lb, v in values("ctnode_jobs"))),
        # /metrics itself is in progress while it is scraped: do not count it.
        requests_in_progress=max(0, int(in_progress[0][1]) - 1) if in_progress else 0,
        requests_by_status=tuple(sorted(by_class.items())),
        results=tuple(sorted(results.items())),
        last_errors=tuple(last),
        stage_mean_seconds=stages,
        queues=tuple(sorted((lb.get("queue", "?"), int(v))
                            for lb, v in values("ctnode_queue_length"))),
    )


def fetch_status(url: str, timeout_s: float = 10.0, api_key: str | None = None) -> NodeStatus:
    """GET /health and /metrics; raises httpx errors when the node does not answer."""
    headers = {"X-API-Key": api_key} if api_key else {}  # /metrics needs it when set
    with httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s, headers=headers) as client:
        health = client.get("/health")
        health.raise_for_status()
        metrics = client.get("/metrics")
        metrics.raise_for_status()
    return node_status(url, health.json(), metrics.text)


def render_status(console: Console, st: NodeStatus, now: float | None = None) -> None:
    now = time.time() if now is None else now
    console.print(f"[bold]{st.url}[/]: {st.health}" + (f", version {st.version}"
                                                        if st.version else ""))
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("models", ", ".join(
        f"{name} {ver} ({'weights installed' if ok else 'weights NOT installed'})"
        for name, ver, ok in st.models) or "-")
    table.add_row("queue", "  ".join(f"{s}: {n}" for s, n in st.jobs) or "no shared job queue")
    if st.queues:
        table.add_row("waiting", "  ".join(f"{q}: {n}" for q, n in st.queues))
    if st.failed_jobs:
        table.add_row("failed jobs", "\n".join(
            f"job {job_id}: {reason}" for job_id, reason in st.failed_jobs))
    table.add_row("requests", f"{st.requests_in_progress} in progress; " + ("  ".join(
        f"{c}: {n}" for c, n in st.requests_by_status) or "none yet"))
    table.add_row("results", "  ".join(f"{k}: {n}" for k, n in st.results) or "none yet")
    table.add_row("last errors", "\n".join(
        f"{code}: {_ago(now - ts)} ago" for code, ts in st.last_errors) or "none")
    table.add_row("stage mean (s)", "  ".join(
        f"{stage} {mean:.2f} ({n})" for stage, mean, n in st.stage_mean_seconds) or "-")
    console.print(table)


def recent_failures(limit: int = 5) -> tuple[tuple[int, str], ...]:
    """The newest failed jobs with their reasons, read from the job back end itself.

    Reasons name UIDs and causes, so they stay out of /metrics labels; this
    reads them where they are kept (SQLite file or Redis). An unreadable
    back end shows as one line instead.
    """
    from jobs import JobState, default_queue_path, make_queue

    settings = get_settings()
    if settings.jobs.backend == "sqlite" and not default_queue_path(
            settings.node.work_dir).exists():
        return ()
    try:
        queue = make_queue(settings)
        try:
            failed = queue.list(JobState.FAILED, limit)
        finally:
            queue.close()
    except Exception as exc:  # noqa: BLE001 - Redis or disk down: say so, keep the rest
        return ((0, f"job queue not readable: {type(exc).__name__}"),)
    return tuple((job.id, job.reason or "-") for job in failed)


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def status(
    api_url: Annotated[str | None, typer.Option(
        "--api-url", help="Base URL of the running API (default: settings batch.api_url).")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
    = False,
) -> None:
    """Health, models, queue counts, request/result counts and recent errors of a running node.

    Exit status: 0 healthy, 1 not reachable or not healthy.
    """
    settings = get_settings()
    url = api_url or settings.batch.api_url
    console = Console()
    key = settings.api.api_key.get_secret_value() if settings.api.api_key else None
    try:
        st = fetch_status(url, api_key=key)
    except (httpx.HTTPError, ValueError) as exc:
        console.print(f"[red]{url}: not reachable[/] ({exc}); is `ctnode serve` running?")
        raise typer.Exit(code=1) from exc
    st = replace(st, failed_jobs=recent_failures())
    if as_json:
        typer.echo(json.dumps(asdict(st), indent=2))
    else:
        render_status(console, st)
    raise typer.Exit(code=0 if st.health == "healthy" else 1)


def register(app: typer.Typer) -> None:
    app.command("status")(status)
