"""Reading a checkpoint and loading it strictly into an architecture.

A learned model is only as good as the match between its weights and its
code: a checkpoint with a missing block or a wrong width must be refused
before it votes, with a message that names what differs. ``compare_layout``
checks names *and* shapes (``torch``'s own strict load reports shape errors one
at a time and only after allocating); ``load_strict`` applies it and then loads.

Layouts are plain ``{name: shape}`` dicts, so the published layout of a model
(built on the ``meta`` device, no memory) and a checkpoint can be compared
without loading a single weight. Importing this module does not import torch
(a node without learned weights never needs it); reading a file does.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from weights.errors import WeightsError

if TYPE_CHECKING:
    import torch
    from torch import nn

logger = logging.getLogger(__name__)

Layout = dict[str, tuple[int, ...]]
StateDict = dict[str, "torch.Tensor"]
KeyAdapter = Callable[[StateDict], StateDict]

_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module")
_LISTED = 8  # names listed per kind in a mismatch message; the rest are counted


class CheckpointError(WeightsError):
    """A checkpoint cannot be read, or does not fit its architecture (the message says how)."""


@dataclass(frozen=True, slots=True)
class LayoutReport:
    """How a checkpoint's names and shapes differ from an architecture's."""

    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    shape_mismatches: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]  # name, want, got

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.shape_mismatches)

    def describe(self) -> str:
        """One paragraph naming every kind of difference (first names of each, then a count)."""
        if self.ok:
            return "layout matches"
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing key(s): {_listed(self.missing)}")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected key(s): {_listed(self.unexpected)}")
        if self.shape_mismatches:
            shown = [f"{n} expected {list(w)} found {list(g)}"
                     for n, w, g in self.shape_mismatches[:_LISTED]]
            more = len(self.shape_mismatches) - len(shown)
            parts.append(f"{len(self.shape_mismatches)} shape difference(s): "
                         + "; ".join(shown) + (f"; and {more} more" if more > 0 else ""))
        return "; ".join(parts)


def _listed(names: tuple[str, ...]) -> str:
    shown = ", ".join(names[:_LISTED])
    more = len(names) - _LISTED
    return shown + (f", and {more} more" if more > 0 else "")


def layout_of(obj: nn.Module | Mapping[str, torch.Tensor]) -> Layout:
    """Names and shapes of a module's state dict (works on the ``meta`` device) or a dict."""
    state = obj if isinstance(obj, Mapping) else obj.state_dict()
    return {k: tuple(int(s) for s in v.shape) for k, v in state.items()}


def compare_layout(expected: Mapping[str, tuple[int, ...]],
                   found: Mapping[str, tuple[int, ...]]) -> LayoutReport:
    """Missing, unexpected and differently shaped names, each sorted."""
    missing = tuple(sorted(set(expected) - set(found)))
    unexpected = tuple(sorted(set(found) - set(expected)))
    shapes = tuple(
        (k, tuple(expected[k]), tuple(found[k]))
        for k in sorted(set(expected) & set(found))
        if tuple(expected[k]) != tuple(found[k])
    )
    return LayoutReport(missing, unexpected, shapes)


def read_state_dict(path: Path) -> StateDict:
    """The tensors of a PyTorch checkpoint file, on the CPU.

    Loads with ``weights_only=True`` (no pickled code runs). Unwraps the usual
    containers (``{"state_dict": …}``, LAVIS's ``{"model": …}``) and strips the
    ``module.`` prefix that ``DistributedDataParallel`` adds.
    """
    import torch

    try:
        try:  # memory-mapped: a 2 GB checkpoint is not read twice into memory
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)  # legacy format
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise CheckpointError(f"{path.name} is not a readable PyTorch checkpoint: "
                              f"{str(exc)[:300]}") from exc
    for _ in range(2):
        if isinstance(obj, Mapping) and not _is_tensor_dict(obj):
            inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping) or not _is_tensor_dict(obj):
        raise CheckpointError(f"{path.name} holds no state dict (a mapping of names to tensors)")
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def _is_tensor_dict(obj: Mapping[object, object]) -> bool:
    import torch

    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], *, what: str) -> None:
    """Load ``state`` into ``module`` or raise ``CheckpointError`` naming every difference."""
    report = compare_layout(layout_of(module), layout_of(state))
    if not report.ok:
        raise CheckpointError(f"{what} does not fit the architecture: {report.describe()}")
    module.load_state_dict(dict(state), strict=True)
    logger.info("loaded %s (%d tensors)", what, len(state))
