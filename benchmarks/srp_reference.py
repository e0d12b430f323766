"""The first paper's reference white-box estimator, re-implemented from its description.

Zhang et al. (https://arxiv.org/abs/2606.04767), code ``franz-chang/SRP``,
``estimate_spec_white``: for one input at a time,

1. ``K`` separate ``backward`` calls give ``Q[:, k] = ∇_x log p_k`` (``d × K``); like the
   reference, they also accumulate the parameters' gradients, which the reference never uses;
2. ``B = Λ^{1/2} Qᵀ Q Λ^{1/2}`` with ``Λ = diag(p)`` (``K × K``; its non-zero spectrum is that
   of ``F = Q Λ Qᵀ``);
3. the estimate is the largest of 100 Rayleigh quotients ``zᵀ B z / zᵀ z``, ``z ~ N(0, I_K)``.

Every Rayleigh quotient is at most ``λ_max(B)``, so the estimate is biased low, by a
model-dependent factor (about 0.6 at ``K = 10`` for confident inputs). It is kept here only
as the baseline the benchmarks compare against; ``art_fim`` computes ``λ_max(B)`` exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def srp_whitebox_estimate(
    forward: Callable[[Tensor], Tensor],
    x: Tensor,
    *,
    num_quotients: int = 100,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Return the reference estimate of ``λ_max(F(x))`` for each input, one input at a time.

    Args:
        forward: maps ``[1, *input_shape]`` to logits ``[1, K]`` (preprocessing included).
        x: ``[N, *input_shape]`` inputs.
        num_quotients: number of random Rayleigh quotients (100 in the reference code).
        generator: random generator for the quotient directions.

    Returns:
        ``[N]`` float64 estimates.
    """
    estimates = []
    for sample in x:
        point = sample[None].detach().clone().requires_grad_(True)
        # log_softmax instead of the reference's log(softmax(·)): the same values, without
        # the reference's underflow to -inf for logit gaps beyond ~90 in float32.
        log_p = torch.log_softmax(forward(point), dim=-1)[0]
        columns = []
        for k in range(log_p.shape[0]):  # K separate backward passes, as in the reference
            log_p[k].backward(retain_graph=True)
            columns.append(point.grad.detach().clone().reshape(-1))
            point.grad = None
        q = torch.stack(columns, dim=1).double()
        root = log_p.detach().double().exp().sqrt()
        b = root[:, None] * (q.T @ q) * root[None, :]
        z = torch.randn(b.shape[0], num_quotients, generator=generator, dtype=torch.float64)
        quotients = (z * (b @ z)).sum(0) / (z * z).sum(0)
        estimates.append(quotients.max())
    return torch.stack(estimates)


def zero_parameter_gradients(module: torch.nn.Module) -> None:
    """Drop the parameter gradients the reference accumulates as a side effect."""
    for parameter in module.parameters():
        parameter.grad = None
