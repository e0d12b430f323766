"""Hutchinson trace estimation of the input Fisher, from forward products only.

For probes ``v`` with ``E[v vᵀ] = I`` (Rademacher or standard Gaussian),
``E[vᵀ F v] = tr F`` (Hutchinson, 1989). Since ``vᵀ F v = (Jv)ᵀ M (Jv)``, each probe
costs one JVP and never a VJP, so the same estimator serves white-box (forward-mode AD)
and query-only (finite differences) Jacobians.

Confidence intervals. The quadratic forms ``q_j = v_jᵀ F v_j`` are skewed (for a rank-one
``F``, ``λ χ²₁``), so ``mean ± 2 SE`` and even ``mean ± t SE`` cover ``tr F`` only 82–87% of
the time at 2–10 probes. Each ``q_j`` is treated as a scaled ``χ²_r`` instead
(Satterthwaite): with ``V = Var(q_j)``, ``m q̄ ≈ c χ²_ν``, ``ν = 2 m q̄² / V``, which gives
the interval ``[ν q̄ / χ²_ν(1 − α/2), ν q̄ / χ²_ν(α/2)]``. ``V`` is the larger of the sample
variance and ``2 ‖F‖_F²``, whose unbiased estimate ``mean_{i<j} (v_iᵀ F v_j)²`` comes from
the same products (``v_iᵀ F v_j = (J v_i)ᵀ M (J v_j)``); ``2 ‖F‖_F²`` is the exact variance
for Gaussian probes and an upper bound for Rademacher ones. Measured coverage of the 95%
interval over rank-1 to rank-99 spectra: 93–96% from 5 probes on, 95–96% at 10; fewer than
:data:`MIN_PROBES` are refused.

| Paper link: https://arxiv.org/abs/2606.04767
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from art_fim.jacobian import InputJacobian

Distribution = Literal["rademacher", "gaussian"]
Generators = torch.Generator | Sequence[torch.Generator] | None

# Fewest probes with a trustworthy interval (see the module docstring).
MIN_PROBES = 10


class HutchinsonResult(NamedTuple):
    """Hutchinson trace estimates per sample, float64 ``[B]`` each.

    Attributes:
        estimate: ``q̄``, the mean of the quadratic forms.
        stderr: ``√(V / m)``.
        dof: ``ν = 2 m q̄² / V``, the degrees of freedom of the scaled-χ² interval
            (``inf`` when ``V = 0``).
    """

    estimate: Tensor
    stderr: Tensor
    dof: Tensor


def sample_probes(
    batch: int, dim: int, distribution: Distribution, generator: Generators
) -> Tensor:
    """Return ``[B, d]`` float64 probes with identity second moment (on the CPU).

    Args:
        batch: ``B``.
        dim: ``d``.
        distribution: ``"rademacher"`` or ``"gaussian"``.
        generator: one generator, or one per sample (row ``b`` drawn from ``generator[b]``,
            so a sample's probes do not depend on the batch it is in).
    """
    if isinstance(generator, Sequence):
        if len(generator) != batch:
            raise ValueError(f"got {len(generator)} generators for a batch of {batch}")
        return torch.cat([sample_probes(1, dim, distribution, g) for g in generator])
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
    generator: Generators = None,
) -> HutchinsonResult:
    r"""Estimate ``tr F(x)`` per sample with its standard error and interval dof.

    .. math::  \widehat{\mathrm{tr}} = \frac1m \sum_{j=1}^m (J v_j)ᵀ M (J v_j),
               \quad \mathrm{se} = \sqrt{V / m}

    with ``V`` the variance estimate of the module docstring.

    Args:
        jac: the batch's input Jacobian (only ``jvp`` is used).
        num_probes: ``m ≥`` :data:`MIN_PROBES` probes per sample.
        distribution: ``"rademacher"`` (lower variance) or ``"gaussian"``.
        generator: random generator for the probes, or one per sample.

    Returns:
        A :class:`HutchinsonResult`.
    """
    if num_probes < MIN_PROBES:
        raise ValueError(
            f"num_probes must be at least {MIN_PROBES} for a trustworthy standard error and "
            f"interval (the quadratic forms are skewed), got {num_probes}"
        )
    p = jac.probs
    products = []
    for _ in range(num_probes):
        v = sample_probes(jac.batch_size, jac.input_dim, distribution, generator).to(jac.device)
        products.append(jac.jvp(v.to(jac.dtype)).double())
    jv = torch.stack(products, dim=1)  # [B, m, K]
    centred = jv - (p[:, None, :] * jv).sum(-1, keepdim=True)
    forms = torch.einsum("bik,bk,bjk->bij", centred, p, centred)  # (J v_i)ᵀ M (J v_j)
    q = torch.diagonal(forms, dim1=1, dim2=2)
    mean = q.mean(-1)
    upper = torch.triu_indices(num_probes, num_probes, offset=1, device=forms.device)
    frobenius2 = forms[:, upper[0], upper[1]].square().mean(-1)  # unbiased for ‖F‖_F²
    variance = torch.maximum(q.var(-1, unbiased=True), 2.0 * frobenius2)
    dof = torch.where(
        variance > 0, 2.0 * num_probes * mean.square() / variance.clamp_min(1e-300), torch.inf
    )
    return HutchinsonResult(mean, (variance / num_probes).sqrt(), dof)
