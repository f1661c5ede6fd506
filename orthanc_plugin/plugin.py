"""Entry script that Orthanc's Python plugin loads (``"PythonScript"`` in orthanc.json).

Runs in Orthanc's embedded *system* Python 3.11, not the project's virtualenv:
it may import only the standard library, ``orthanc``, ``jobs`` and the
stdlib-only modules of ``orthanc_plugin``. The repository root comes from
``CtNode.RepoRoot`` (default: the folder above this file).

Orthanc puts this file's folder first on ``sys.path``; that folder holds
``types.py``, which would shadow the standard library's ``types`` (not yet
imported when the script starts), so the folder is removed before any other import.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import json  # noqa: E402
import logging  # noqa: E402

import orthanc  # noqa: E402

_CONFIG = json.loads(orthanc.GetConfiguration())
_ROOT = str(_CONFIG.get("CtNode", {}).get("RepoRoot") or os.path.dirname(_HERE))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from jobs.sqlite_queue import SqliteJobQueue  # noqa: E402
from orthanc_plugin.host import (  # noqa: E402
    OrthancLogHandler,
    PluginHost,
    check_authentication,
    parse_config,
)

_handler = OrthancLogHandler(orthanc)
_handler.setFormatter(logging.Formatter("ctnode %(name)s: %(message)s"))
for _name in ("orthanc_plugin", "jobs"):
    logging.getLogger(_name).addHandler(_handler)
    logging.getLogger(_name).setLevel(logging.INFO)

check_authentication(_CONFIG)
_plugin_config = parse_config(_CONFIG)
os.makedirs(os.path.dirname(os.path.abspath(_plugin_config.queue_path)), exist_ok=True)
HOST = PluginHost(orthanc, _plugin_config, SqliteJobQueue(_plugin_config.queue_path))
HOST.register()
