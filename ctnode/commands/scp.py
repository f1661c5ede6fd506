"""``ctnode scp``: run the embedded DICOM node (C-ECHO/C-STORE SCP, jobs, delivery).

Stop it with Ctrl-C or SIGTERM. A job in progress when the process dies is
taken over after restart once its lease (``scp.job_lease_s``) expires.
"""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from ctnode.settings import get_settings


def scp(
    port: Annotated[int | None, typer.Option(
        help="TCP port (default: settings scp.port, 11112).")] = None,
    bind: Annotated[str | None, typer.Option(
        help="Bind address (default: settings scp.bind_address, 127.0.0.1).")] = None,
    ae_title: Annotated[str | None, typer.Option(
        "--ae-title", help="Our AE title (default: settings scp.ae_title).")] = None,
) -> None:
    """Receive CT studies by C-STORE; send the SR and SC to the configured destinations."""
    from ctnode.logging_setup import configure_logging
    from scp_node import run_scp

    settings = get_settings()
    updates: dict[str, object] = {}
    if port is not None:
        updates["port"] = port
    if bind is not None:
        updates["bind_address"] = bind
    if ae_title is not None:
        updates["ae_title"] = ae_title
    if updates:
        settings = settings.model_copy(
            update={"scp": settings.scp.model_validate({**settings.scp.model_dump(), **updates})}
        )
    configure_logging(settings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run_scp(settings, stop)


def register(app: typer.Typer) -> None:
    app.command("scp")(scp)
