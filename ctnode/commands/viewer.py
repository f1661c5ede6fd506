"""``ctnode viewer``: serve OHIF with the node's Orthanc DICOMweb on one origin.

A door: it builds :func:`ctnode.viewer.build_viewer_app` and runs it with
uvicorn. Open ``http://HOST:PORT/`` for the study list, or
``/viewer?StudyInstanceUIDs=<uid>`` for one study (its AI SR and SC included).
"""

from __future__ import annotations

from typing import Annotated

import typer

from ctnode.settings import get_settings


def viewer(
    port: Annotated[int | None, typer.Option(help="TCP port (default: viewer.port).")] = None,
    orthanc: Annotated[str | None, typer.Option(
        "--orthanc", help="Orthanc URL (default: settings orthanc.url); credentials from "
        "CTNODE_ORTHANC__USERNAME / CTNODE_ORTHANC__PASSWORD.")] = None,
) -> None:
    """Serve the OHIF web viewer for the studies in Orthanc (read-only)."""
    import uvicorn

    from ctnode.logging_setup import configure_logging
    from ctnode.viewer import ViewerConfigError, build_viewer_app

    settings = get_settings()
    view = settings.viewer if port is None else settings.viewer.model_copy(update={"port": port})
    source = settings.orthanc if orthanc is None else settings.orthanc.model_copy(
        update={"url": orthanc})
    configure_logging(settings)
    try:
        app = build_viewer_app(view, source)
    except ViewerConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    uvicorn.run(app, host=view.host, port=view.port, log_level="warning")


def register(app: typer.Typer) -> None:
    app.command("viewer")(viewer)
