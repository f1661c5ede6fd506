"""Errors of the Orthanc door (plugin side and worker side)."""

from __future__ import annotations


class OrthancPluginError(Exception):
    """Base error of ``orthanc_plugin``."""


class PluginConfigError(OrthancPluginError):
    """The ``CtNode`` section of the Orthanc configuration is missing or wrong."""


class OrthancRestError(OrthancPluginError):
    """A call to Orthanc's REST API failed (status or transport error).

    ``status`` is the HTTP status, or None when no answer came back.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
