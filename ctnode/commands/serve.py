"""``ctnode serve``: start the REST API (uvicorn)."""

from __future__ import annotations

from typing import Annotated

import typer

from ctnode.settings import get_settings


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default: settings api.host, "
                                             "127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default: settings api.port, "
                                             "8000).")] = None,
) -> None:
    """Start the REST API: GET /health, POST /predict, POST /predict_nifti, docs at /docs."""
    import uvicorn

    from api.app import create_app
    from ctnode.logging_setup import configure_logging

    settings = get_settings()
    configure_logging(settings)
    uvicorn.run(
        create_app(settings),
        host=host or settings.api.host,
        port=port or settings.api.port,
        log_level=settings.log_level.lower(),
        log_config=None,  # keep our handlers (JSON lines, no patient data)
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
