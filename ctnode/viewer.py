"""The node as a web viewer: the built OHIF app and Orthanc's DICOMweb on one origin.

OHIF v3 is published on npm as a built app (``@ohif/app``, folder ``dist/``).
Orthanc answers no CORS, so the browser must reach the app and DICOMweb on the
same origin: this small Starlette app serves ``dist/`` at the root, writes an
``app-config.js`` whose one data source is ``<origin>/dicom-web``, and proxies
``/dicom-web/...`` to Orthanc with the node's Orthanc credentials (the browser
never sees them). It is read-only on purpose: only GET and HEAD are forwarded,
so STOW-RS and Orthanc's REST API are not reachable through it.

Who may look: patient data is on every page. Bound to loopback it needs no
password; on any other address ``viewer.username`` / ``viewer.password`` are
required (HTTP Basic, checked on every request), else :func:`build_viewer_app`
refuses to start.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import ipaddress
import json
import logging
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from ctnode.settings import OrthancSettings, ViewerSettings

logger = logging.getLogger(__name__)

OHIF_VERSION = "3.13.2"
"""The ``@ohif/app`` release ``bootstrap.sh`` installs and the browser test runs against."""

# Response headers of Orthanc that must not be copied onto our (re-framed) response.
_HOP_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length",
                          "content-encoding", "www-authenticate", "server"})


class ViewerConfigError(ValueError):
    """The viewer cannot start as configured (no OHIF build, open address without login)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def app_config_js(title: str = "ctnode") -> str:
    """OHIF's ``app-config.js``: one DICOMweb source at ``<page origin>/dicom-web``.

    The origin is taken in the browser, so the same file works behind any host
    name or reverse proxy that keeps the path.
    """
    source = {
        "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
        "sourceName": "ctnode",
        "configuration": {
            "friendlyName": f"{title} (Orthanc DICOMweb)",
            "name": "ctnode",
            "qidoSupportsIncludeField": False,
            "imageRendering": "wadors",
            "thumbnailRendering": "wadors",
            "enableStudyLazyLoad": True,
            "supportsFuzzyMatching": False,
            "supportsWildcard": True,
            "staticWado": False,
            "singlepart": "bulkdata,video",
            "bulkDataURI": {"enabled": True, "relativeResolution": "studies"},
            "omitQuotationForMultipartRequest": True,
        },
    }
    return (
        "/* written by ctnode.viewer: one DICOMweb source, same origin as the app */\n"
        "(function () {\n"
        "  var root = window.location.origin + '/dicom-web';\n"
        f"  var source = {json.dumps(source)};\n"
        "  source.configuration.qidoRoot = root;\n"
        "  source.configuration.wadoRoot = root;\n"
        "  source.configuration.wadoUriRoot = root;\n"
        "  window.config = {\n"
        "    routerBasename: '/',\n"
        "    extensions: [], modes: [], customizationService: {},\n"
        "    showStudyList: true, maxNumberOfWebWorkers: 2,\n"
        "    showWarningMessageForCrossOrigin: false, showCPUFallbackMessage: false,\n"
        "    showLoadingIndicator: true, strictZSpacingForVolumeViewport: true,\n"
        "    defaultDataSourceName: 'ctnode', dataSources: [source],\n"
        "  };\n"
        "})();\n"
    )


def _authorised(request: Request, settings: ViewerSettings) -> bool:
    if settings.username is None or settings.password is None:
        return True
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    return hmac.compare_digest(user, settings.username) and hmac.compare_digest(
        password, settings.password.get_secret_value())


def build_viewer_app(
    settings: ViewerSettings, orthanc: OrthancSettings, *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """The viewer's web app (serve it with uvicorn on ``settings.host:settings.port``).

    Raises :class:`ViewerConfigError` when ``settings.ohif_dir`` holds no built
    OHIF (run ``bash bootstrap.sh test`` or see docs/sr.md) or when a
    non-loopback address has no login configured.
    """
    dist = settings.ohif_dir.resolve()
    if not (dist / "index.html").is_file():
        raise ViewerConfigError(
            f"no built OHIF app in {dist} (install @ohif/app@{OHIF_VERSION}: see docs/sr.md)")
    if not is_loopback(settings.host) and (settings.username is None
                                           or settings.password is None):
        raise ViewerConfigError(
            f"the viewer shows patient data: binding {settings.host} needs "
            "viewer.username and viewer.password")
    upstream = (settings.dicomweb_url or f"{orthanc.url.rstrip('/')}/dicom-web").rstrip("/")
    auth = (orthanc.username, orthanc.password.get_secret_value()) if orthanc.password else None
    client = httpx.AsyncClient(auth=auth, timeout=orthanc.http_timeout_s, transport=transport)
    index_html = (dist / "index.html").read_bytes()

    async def app_config(request: Request) -> Response:
        return Response(app_config_js(), media_type="application/javascript",
                        headers={"Cache-Control": "no-store"})

    async def dicomweb(request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return PlainTextResponse("the viewer proxy is read-only", status_code=405)
        url = f"{upstream}/{request.path_params['path']}"
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("accept", "range", "if-none-match")}
        upstream_request = client.build_request(request.method, url, headers=headers,
                                                params=request.query_params)
        reply = await client.send(upstream_request, stream=True)
        kept = {k: v for k, v in reply.headers.items() if k.lower() not in _HOP_HEADERS}

        async def body() -> AsyncIterator[bytes]:
            async for chunk in reply.aiter_bytes():  # decoded: content-encoding dropped
                yield chunk

        return StreamingResponse(body(), status_code=reply.status_code, headers=kept,
                                 background=BackgroundTask(reply.aclose))

    async def static(request: Request) -> Response:
        rel = request.path_params.get("path", "")
        target = (dist / rel).resolve()
        if rel and target.is_file() and target.is_relative_to(dist):
            return FileResponse(target)
        # the app's own routes (/viewer?StudyInstanceUIDs=...) are client-side
        return Response(index_html, media_type="text/html")

    routes = [
        Route("/app-config.js", app_config),
        Route("/dicom-web/{path:path}", dicomweb, methods=["GET", "HEAD", "POST", "PUT",
                                                           "DELETE"]),
        Route("/{path:path}", static),
    ]

    class _Login(BaseHTTPMiddleware):
        async def dispatch(self, request: Request,
                           call_next: RequestResponseEndpoint) -> Response:
            if not _authorised(request, settings):
                return PlainTextResponse(
                    "login required", status_code=401,
                    headers={"WWW-Authenticate": 'Basic realm="ctnode viewer"'})
            return await call_next(request)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    app = Starlette(routes=routes, middleware=[Middleware(_Login)], lifespan=lifespan)
    logger.info("viewer: OHIF %s from %s, DICOMweb proxied to %s", OHIF_VERSION, dist, upstream)
    return app
