"""The zoo's committed weights: float16 state dicts under ``leaderboard/zoo/models/``."""

from __future__ import annotations

import io
from pathlib import Path

import torch
from torch import nn

from leaderboard.store import write_bytes_atomic
from leaderboard.zoo.architectures import build
from leaderboard.zoo.plan import ZOO

ZOO_DIR = Path(__file__).resolve().parent


def weights_path(name: str, directory: Path = ZOO_DIR) -> Path:
    """Where the float16 state dict of zoo model ``name`` lives."""
    return directory / "models" / f"{name}.pt"


def save_weights(model: nn.Module, path: Path) -> None:
    """Write ``model``'s state dict in float16, atomically (a stopped run leaves no half file)."""
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def load_model(name: str, directory: Path = ZOO_DIR) -> nn.Module:
    """A trained zoo model: float32, eval mode, on the CPU, taking [0, 1] pixels ``[N, 3, 32, 32]``.

    Weights are read with ``weights_only=True``: a state dict holds tensors only.

    Raises:
        KeyError: ``name`` is not a zoo model.
        FileNotFoundError: the model has not been trained yet.
        OSError: the weights file cannot be read (truncated or corrupt), naming it.
    """
    if name not in ZOO:
        raise KeyError(f"{name!r} is not a zoo model; choose one of {', '.join(ZOO)}")
    path = weights_path(name, directory)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: train it with `python -m leaderboard.zoo.build train "
            f"--models {name}`"
        )
    model = build(ZOO[name].architecture)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        # A truncated file fails deep in torch's zip reader ("[Errno 22] Invalid argument"), naming
        # no file.
        raise OSError(
            f"{path} ({path.stat().st_size} bytes) could not be read: {type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:200] or 'the file ends early'}. The file is probably "
            "truncated or corrupt: restore it or retrain with `python -m leaderboard.zoo.build "
            f"train --models {name}`"
        ) from exc
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.eval()
