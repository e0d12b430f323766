"""Gaussian-noised copies of inputs: the sampling side of average-case robustness.

Two estimators pass many noisy copies of each input through the model (Monte Carlo
average-case robustness, :mod:`art_fim.average_case`, and the expected noise KL,
:mod:`art_fim.noise_kl`); :func:`noisy_passes` is their one loop over those copies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor


def noisy_copies(
    x: Tensor, sigma: float, copies: int, generator: torch.Generator | Sequence[torch.Generator]
) -> Tensor:
    """Return ``x_b + σ ε`` for ``copies`` draws ``ε ∼ N(0, I)`` per input: ``[B · copies, …]``.

    Copies of one input are contiguous (``b``'s copies are rows ``b·copies … (b+1)·copies − 1``).
    The noise is not clipped to the valid input range: the estimators' definition
    ``P_{ε∼N(0,σ²I)}[argmax f(x+ε) = argmax f(x)]`` and its linearisation assume unclipped
    Gaussian noise (as the paper's code does).

    Args:
        x: ``[B, *input_shape]`` inputs.
        sigma: the noise standard deviation.
        copies: noisy copies per input.
        generator: one generator for the whole batch (on ``x``'s device), or one CPU generator
            per input (:mod:`art_fim.streams`), from which that input's copies are drawn one at a
            time: its ``j``-th copy is then the same however the copies and the inputs are cut
            into passes and batches.
    """
    if isinstance(generator, torch.Generator):
        noise = torch.randn(
            (x.shape[0], copies, *x.shape[1:]), generator=generator, device=x.device, dtype=x.dtype
        )
    else:
        noise = torch.stack(
            [
                torch.stack(
                    [torch.randn(x.shape[1:], generator=g, dtype=x.dtype) for _ in range(copies)]
                )
                for g in generator
            ]
        ).to(x.device)
    return (x[:, None] + sigma * noise).reshape(x.shape[0] * copies, *x.shape[1:])


def noisy_passes(
    outputs: Callable[[Tensor], Tensor],
    x: Tensor,
    sigma: float,
    total: int,
    per_pass: int,
    generators: Sequence[torch.Generator],
) -> Iterator[Tensor]:
    """The model's outputs on ``total`` noisy copies of each input, a few copies per pass.

    Args:
        outputs: the model's gradient-free outputs, ``[n, *input_shape] -> [n, K]``.
        x: ``[B, *input_shape]`` clean inputs.
        sigma: the noise standard deviation.
        total: noisy copies per input.
        per_pass: noisy inputs per forward pass (all ``B`` inputs' copies together).
        generators: one CPU generator per input (:func:`noisy_copies`).

    Yields:
        ``[B, copies, K]`` outputs of each pass, ``copies`` summing to ``total``.
    """
    b = x.shape[0]
    step = max(1, per_pass // b)
    for done in range(0, total, step):
        copies = min(step, total - done)
        yield outputs(noisy_copies(x, sigma, copies, generators)).reshape(b, copies, -1)
