"""The Orthanc door: a thin plugin that queues stable CT studies, and the worker that runs them.

Two halves with different interpreters:

* ``plugin.py`` (entry script), ``host``, ``study_scan``, ``rest_routes``,
  ``types``, ``errors`` run inside Orthanc's embedded system Python and use only
  the standard library, the ``orthanc`` module and ``jobs``. Only these are
  re-exported here, so importing the package never pulls in the virtualenv.
* ``client`` (httpx) and ``worker`` (pipeline, SR writer) run in the project's
  virtualenv via ``ctnode worker``; import them from their modules.
"""

from orthanc_plugin.errors import (
    OrthancPluginError,
    OrthancRestError,
    PluginConfigError,
)
from orthanc_plugin.host import JOB_SOURCE, PluginHost, parse_config
from orthanc_plugin.study_scan import content_hash, is_own_series, scan_study
from orthanc_plugin.types import PluginConfig, StudyScan

__all__ = [
    "JOB_SOURCE",
    "OrthancPluginError",
    "OrthancRestError",
    "PluginConfig",
    "PluginConfigError",
    "PluginHost",
    "StudyScan",
    "content_hash",
    "is_own_series",
    "parse_config",
    "scan_study",
]
