"""Standard AutoAttack accuracy (Croce & Hein, 2020, https://arxiv.org/abs/2003.01690).

The ``standard`` version runs APGD-CE, APGD-T, FAB-T and Square in sequence, each on the
points still classified correctly; its accuracy is what RobustBench reports. This uses the
PyPI package ``pyautoattack`` (import name ``pyautoattack``).
"""

from __future__ import annotations

import time

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
) -> dict[str, float]:
    """Robust accuracy (percent) under standard AutoAttack.

    Args:
        model: classifier on [0, 1] inputs, in eval mode.
        x: ``[N, 3, H, W]`` float inputs in [0, 1].
        y: ``[N]`` labels.
        norm: ``"Linf"`` or ``"L2"``.
        eps: radius; default 8/255 (ℓ∞) or 0.5 (ℓ2), RobustBench's CIFAR-10 settings.
        batch_size: attack batch size.
        seed: AutoAttack's seed.
        device: where to attack.

    Returns:
        ``{"autoattack_acc": ..., "eps": ..., "seconds": ..., "n": ...}``.
    """
    from pyautoattack import AutoAttack

    eps = THREATS[norm] if eps is None else eps
    model = model.to(device).eval()
    # pyautoattack's gradient check needs contiguous NCHW tensors.
    x = x.to(device).float().contiguous()
    y = y.to(device)
    start = time.perf_counter()
    adversary = AutoAttack(model, norm=norm, eps=eps, version="standard", device=device, seed=seed)
    x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=batch_size)
    with torch.no_grad():
        correct = sum(
            int((model(x_adv[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
            for i in range(0, len(x), batch_size)
        )
    if device != "cpu" and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
    return {"autoattack_acc": 100.0 * correct / len(x), "eps": eps, "seconds": time.perf_counter() - start,
            "n": len(x)}
