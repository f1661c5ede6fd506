"""Errors of the embedded DICOM node."""

from __future__ import annotations


class ScpError(Exception):
    """Base of every scp_node error."""


class ScpConfigError(ScpError):
    """Settings that cannot work (bad network in the allow list, unusable folder)."""


class SpoolFullError(ScpError):
    """Not enough free disk space to store an instance: C-STORE answers 0xA700."""


class InstanceTooLargeError(ScpError):
    """The instance (or its inflated data set) exceeds the per-instance limit: 0xA700."""


class UnreadableInstanceError(ScpError):
    """A received instance whose header cannot be read (no study/series UID).

    It is kept as received in the spool's quarantine folder; C-STORE answers 0xC000.
    """


class DeliveryError(ScpError):
    """Sending results to a destination failed (unreachable, rejected, failure status)."""
