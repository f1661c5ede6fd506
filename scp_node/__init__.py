"""The embedded DICOM node (``ctnode scp``): C-ECHO/C-STORE SCP, spool, study-stable timer,
job workers, C-STORE SCU / STOW-RS delivery with retries.

Works without Orthanc: point a modality or ``storescu`` at it and the SR and
SC arrive at the configured destinations.
"""

from scp_node.access import AccessPolicy, build_policy
from scp_node.delivery import deliver, send_c_store, send_stow, targets_from_settings
from scp_node.errors import (
    DeliveryError,
    ScpConfigError,
    ScpError,
    SpoolFullError,
    UnreadableInstanceError,
)
from scp_node.handler import ScpJobHandler, results_root
from scp_node.node import SOURCE, ScpNode, run_scp, spool_root, worker_settings
from scp_node.server import StoreScp, StoreStatus, build_ae, configure_pynetdicom, start_scp
from scp_node.spool import Spool
from scp_node.stability import StabilityMonitor
from scp_node.types import AccessDecision, DeliveryTarget, SpooledInstance, SpooledStudy

__all__ = [
    "SOURCE",
    "AccessDecision",
    "AccessPolicy",
    "DeliveryError",
    "DeliveryTarget",
    "ScpConfigError",
    "ScpError",
    "ScpJobHandler",
    "ScpNode",
    "Spool",
    "SpoolFullError",
    "SpooledInstance",
    "SpooledStudy",
    "StabilityMonitor",
    "StoreScp",
    "StoreStatus",
    "UnreadableInstanceError",
    "build_ae",
    "build_policy",
    "configure_pynetdicom",
    "deliver",
    "results_root",
    "run_scp",
    "send_c_store",
    "send_stow",
    "spool_root",
    "start_scp",
    "targets_from_settings",
    "worker_settings",
]
