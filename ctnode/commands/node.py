"""``ctnode node``: the embedded default — REST API and DICOM SCP in one process.

The SCP (with its job workers and delivery) runs in a background thread; the
REST API runs in the foreground. Ctrl-C or SIGTERM stops both: the API first,
then the SCP, whose unfinished jobs are taken up again at the next start.
"""

from __future__ import annotations

import logging
import threading
from typing import Annotated

import typer

from ctnode.settings import get_settings

logger = logging.getLogger(__name__)


def node(
    with_scp: Annotated[bool, typer.Option("--scp/--no-scp",
                                           help="Also run the DICOM SCP (default on).")] = True,
) -> None:
    """Run the node: REST API (settings api.*) and DICOM SCP (settings scp.*)."""
    import uvicorn

    from api.app import create_app
    from ctnode.logging_setup import configure_logging
    from scp_node import run_scp

    settings = get_settings()
    configure_logging(settings)
    stop = threading.Event()
    scp_thread: threading.Thread | None = None
    if with_scp:
        scp_thread = threading.Thread(target=run_scp, args=(settings, stop), name="scp",
                                      daemon=True)
        scp_thread.start()
        logger.info("DICOM SCP %s on %s:%d", settings.scp.ae_title, settings.scp.bind_address,
                    settings.scp.port)
    try:
        uvicorn.run(create_app(settings), host=settings.api.host, port=settings.api.port,
                    log_level=settings.log_level.lower(), log_config=None)
    finally:
        stop.set()
        if scp_thread is not None:
            scp_thread.join(timeout=30)


def register(app: typer.Typer) -> None:
    app.command("node")(node)
