"""Hutchinson trace estimation of the input Fisher, from forward products only.

For probes ``v`` with ``E[v vᵀ] = I`` (Rademacher or standard Gaussian),
``E[vᵀ F v] = tr F`` (Hutchinson, 1989). Since ``vᵀ F v = (Jv)ᵀ M (Jv)``, each probe
costs one JVP and never a VJP, so the same estimator serves white-box (forward-mode AD)
and query-only (finite differences) Jacobians.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from art_fim.jacobian import InputJacobian

Distribution = Literal["rademacher", "gaussian"]


def sample_probes(
    batch: int, dim: int, distribution: Distribution, generator: torch.Generator | None
) -> Tensor:
    """Return ``[B, d]`` float64 probes with identity second moment (on the CPU)."""
    if distribution == "rademacher":
        signs = torch.randint(0, 2, (batch, dim), generator=generator, dtype=torch.int8)
        return signs.to(torch.float64) * 2.0 - 1.0
    if distribution == "gaussian":
        return torch.randn(batch, dim, generator=generator, dtype=torch.float64)
    raise ValueError(f"distribution must be 'rademacher' or 'gaussian', got {distribution!r}")


def fisher_quadratic_form(jv: Tensor, p: Tensor) -> Tensor:
    """Return ``(Jv)ᵀ M (Jv) = Var_{k∼p}[(Jv)_k]`` per sample, float64 ``[B]``."""
    jv = jv.double()
    mean = (p * jv).sum(-1)
    return (p * jv.square()).sum(-1) - mean.square()


def hutchinson_trace(
    jac: InputJacobian,
    num_probes: int = 100,
    *,
    distribution: Distribution = "rademacher",
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Estimate ``tr F(x)`` per sample with its standard error.

    .. math::  \\widehat{\\mathrm{tr}} = \\frac1m \\sum_{j=1}^m (J v_j)ᵀ M (J v_j),
               \\quad \\mathrm{se} = \\mathrm{std}_j / \\sqrt{m}.

    Args:
        jac: the batch's input Jacobian (only ``jvp`` is used).
        num_probes: ``m`` probes per sample (``m ≥ 2`` for a standard error).
        distribution: ``"rademacher"`` (lower variance) or ``"gaussian"``.
        generator: random generator for the probes.

    Returns:
        ``(estimate, stderr)``, each float64 ``[B]``.
    """
    if num_probes < 2:
        raise ValueError(f"num_probes must be at least 2 to give a standard error, got {num_probes}")
    p = jac.probs
    samples = []
    for _ in range(num_probes):
        v = sample_probes(jac.batch_size, jac.input_dim, distribution, generator).to(jac.device)
        samples.append(fisher_quadratic_form(jac.jvp(v.to(jac.dtype)), p))
    stacked = torch.stack(samples, dim=0)
    return stacked.mean(0), stacked.std(0, unbiased=True) / num_probes**0.5
