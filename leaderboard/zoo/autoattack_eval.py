"""Standard AutoAttack accuracy (Croce & Hein, 2020, https://arxiv.org/abs/2003.01690).

The ``standard`` version runs APGD-CE, APGD-T, FAB-T and Square in sequence, each on the
points still classified correctly; its accuracy is what RobustBench reports. This uses the
PyPI package ``pyautoattack`` (import name ``pyautoattack``).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import Tensor, nn

THREATS: dict[str, float] = {"Linf": 8 / 255, "L2": 0.5}


def autoattack_accuracy(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    norm: str,
    eps: float | None = None,
    batch_size: int = 500,
    seed: int = 0,
    device: torch.device | str = "cpu",
    state_path: Path | None = None,
) -> dict[str, float]:
    """Robust accuracy (percent) under standard AutoAttack.

    The accuracy is read from AutoAttack's per-point robust flags, not from re-evaluating the
    returned examples: after a resumed run those hold only the current run's adversarials.

    Args:
        model: classifier on [0, 1] inputs, in eval mode.
        x: ``[N, 3, H, W]`` float inputs in [0, 1].
        y: ``[N]`` labels.
        norm: ``"Linf"`` or ``"L2"``.
        eps: radius; default 8/255 (ℓ∞) or 0.5 (ℓ2), RobustBench's CIFAR-10 settings.
        batch_size: attack batch size.
        seed: AutoAttack's seed.
        device: where to attack.
        state_path: pyautoattack's state file: the robust flags are saved after every batch and
            every finished attack, and a run that finds the file resumes at the next attack.

    Returns:
        ``{"autoattack_acc": ..., "clean_acc": ..., "eps": ..., "seconds": ..., "n": ...}``
        (percent; ``clean_acc`` is NaN without a state file); ``seconds`` counts this run only.
    """
    from pyautoattack import AutoAttack
    from pyautoattack.state import EvaluationState

    eps = THREATS[norm] if eps is None else eps
    model = model.to(device).eval()
    # pyautoattack's gradient check needs contiguous NCHW tensors.
    x = x.to(device).float().contiguous()
    y = y.to(device)
    start = time.perf_counter()
    adversary = AutoAttack(model, norm=norm, eps=eps, version="standard", device=device, seed=seed)
    if state_path is None:
        _, y_adv = adversary.run_standard_evaluation(x, y, batch_size=batch_size)
        robust = (y_adv == y).float().mean().item()
        clean = float("nan")
    else:
        state_path.parent.mkdir(parents=True, exist_ok=True)
        adversary.run_standard_evaluation(x, y, batch_size=batch_size, state_path=state_path)
        state = EvaluationState.from_disk(state_path)
        robust = state.robust_flags.float().mean().item()
        clean = state.clean_accuracy * 100.0
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
    return {"autoattack_acc": 100.0 * robust, "clean_acc": clean, "eps": eps,
            "seconds": time.perf_counter() - start, "n": len(x)}
