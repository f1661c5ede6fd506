"""A generated phantom as the HU volume the pipeline would hand the model.

Kept here, without importing the phantom package, because tests and benchmarks
of several packages build volumes this way. The evaluation itself (phantom
cohort, labelled real cases) lives in the top-level ``evaluation`` package.
"""

from __future__ import annotations

from typing import Any

from series_selector.types import AcquisitionInfo, HUVolume

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def phantom_volume(ph: Any, header_kernel: str = "", kvp: float | None = None) -> HUVolume:
    """``ph`` (``phantom.Phantom``: hu, spacing, origin) as an axial LPS HU volume.

    ``header_kernel`` and ``kvp`` become the header hints a scanner would give.
    """
    sx, sy, sz = (float(s) for s in ph.spacing)
    ox, oy, oz = (float(o) for o in ph.origin)
    return HUVolume(voxels=ph.hu, spacing=(sx, sy, sz), origin=(ox, oy, oz), direction=IDENTITY,
                    series_uid="phantom", slice_thickness_mm=sz,
                    acquisition=AcquisitionInfo(kvp=kvp, convolution_kernel=header_kernel))
