"""The resumable state of a training run: saved after every epoch, restored bit for bit.

A checkpoint holds the weights (with batch-norm buffers), the optimiser's and the schedule's
state, the data-order generator and the global random streams (CPU, and CUDA when training
there), the epochs done, the wall time spent and the last loss, beside the ``settings`` it
was made with. It is resumed only under the same settings; on the CPU, whose kernels are
deterministic, a resumed run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from leaderboard.store import write_bytes_atomic

logger = logging.getLogger(__name__)


def capture(
    model: nn.Module, optimizer: torch.optim.Optimizer, schedule: Any, generator: torch.Generator,
    device: torch.device
) -> dict[str, Any]:
    """Everything that decides the rest of the run, as tensors and plain values."""
    state = {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
    }
    if device.type == "cuda":  # attack starts and noise are drawn on the device
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    return state


def restore(
    state: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer, schedule: Any,
    generator: torch.Generator, device: torch.device,
) -> None:
    """Put what :func:`capture` saved back in place."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"], device)


def save(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a stop during the write keeps the previous file."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def load(path: Path | None, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The state saved at ``path`` if it was made with ``settings``; else ``None``, with a warning.

    An unreadable file (truncated, or not a training state) is ignored rather than blocking
    every rerun; it is read with ``weights_only=True``, so it runs no code.
    """
    if path is None or not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any unreadable file means: start afresh
        logger.warning("%s could not be read (%s); training from the start", path, error)
        return None
    if not isinstance(state, dict) or state.get("settings") != settings:
        found = state.get("settings") if isinstance(state, dict) else type(state).__name__
        logger.warning("%s was saved with other settings (%s); training from the start", path,
                       found)
        return None
    return state
