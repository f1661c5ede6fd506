"""The one smooth function every measurement-to-probability rule uses."""

from __future__ import annotations

import math


def logistic(x: float, threshold: float, scale: float) -> float:
    """Probability 0.5 at ``threshold``; ``scale`` > 0 sets the width (increasing in x)."""
    if scale <= 0:
        raise ValueError("logistic scale must be positive")
    z = (x - threshold) / scale
    if z > 40:
        return 1.0
    if z < -40:
        return 0.0
    return 1.0 / (1.0 + math.exp(-z))
