"""Gaussian-noised copies of inputs: the sampling side of average-case robustness."""

from __future__ import annotations

import torch
from torch import Tensor


def noisy_copies(x: Tensor, sigma: float, copies: int, generator: torch.Generator) -> Tensor:
    """Return ``x_b + σ ε`` for ``copies`` draws ``ε ∼ N(0, I)`` per input: ``[B · copies, …]``.

    Copies of one input are contiguous (``b``'s copies are rows ``b·copies … (b+1)·copies − 1``).
    The noise is not clipped to the valid input range: the estimators' definition
    ``P_{ε∼N(0,σ²I)}[argmax f(x+ε) = argmax f(x)]`` and its linearisation assume unclipped
    Gaussian noise (as the paper's code does).
    """
    noise = torch.randn(
        (x.shape[0], copies, *x.shape[1:]), generator=generator, device=x.device, dtype=x.dtype
    )
    return (x[:, None] + sigma * noise).reshape(x.shape[0] * copies, *x.shape[1:])
