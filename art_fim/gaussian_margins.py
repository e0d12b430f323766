r"""The linearised probability that a prediction survives Gaussian noise, from margin Grams.

Let ``t`` be the class predicted at ``x`` and ``g_i = z_t − z_i`` (``i ≠ t``) the logit margins.
Linearising each margin, ``g_i(x + ε) ≈ g_i + ∇g_iᵀ ε`` with ``ε ∼ N(0, σ² I)``, the prediction
survives when ``s_i := −u_iᵀ ε/σ ≤ z_i`` for every ``i``, where ``u_i = ∇g_i / ‖∇g_i‖`` and

.. math::  z_i = \frac{g_i}{σ ‖∇g_i‖}, \qquad s ∼ N(0, U Uᵀ),

so the linearised robustness is the ``(K−1)``-dimensional normal orthant probability
``Φ_{UUᵀ}(z) = P[s ≤ z]`` (Han, Srinivas & Lakkaraju, UAI 2024,
https://arxiv.org/abs/2307.13885). Everything here needs only the margins and the Gram matrix
of their gradients, ``H = A (J Jᵀ) Aᵀ`` with the rows of ``A`` equal to ``e_t − e_i``: the same
``K × K`` Gram ``J Jᵀ`` from which :mod:`art_fim.exact` gets the Fisher spectrum.

Beside the orthant probability: its closed-form "multivariate sigmoid" approximation
``1 / (1 + Σ_i exp(−z_i))`` (as in the paper's code, no 1.702 scaling), and the cheap bounds

.. math::  \max(0,\ 1 − Σ_i Φ(−z_i)) \;≤\; Φ_{UUᵀ}(z) \;≤\; \min_i Φ(z_i)

(Boole's inequality below, the least likely single constraint above).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import ndtr
from scipy.stats import multivariate_normal
from torch import Tensor

# Constraints with z above this are dropped from the orthant probability: each changes it by
# at most Φ(−8) ≈ 6e-16, and dropping them also removes the margins that never move (z = ∞).
Z_NEGLIGIBLE = 8.0
# Diagonal loading of the correlation matrix, as in the paper's code (1e-5): U Uᵀ is singular
# whenever K − 1 exceeds the input dimension or two margin gradients are parallel. Rescaling
# keeps a unit diagonal, so each marginal probability Φ(z_i) stays exact.
CORRELATION_JITTER = 1e-5


def margin_selector(logits: Tensor, target: Tensor) -> Tensor:
    """Return ``A`` with rows ``e_t − e_i`` for the ``K − 1`` classes ``i ≠ t``: ``[B, K−1, K]``.

    Competitors keep their class order, so row ``j`` of sample ``b`` is class
    :func:`competitor_classes` ``[b, j]``.
    """
    b, k = logits.shape
    eye = torch.eye(k, dtype=torch.float64, device=logits.device)
    selector = eye[target][:, None, :] - eye[None, :, :]  # [B, K, K]: row i is e_t − e_i
    keep = torch.ones(b, k, dtype=torch.bool, device=logits.device)
    keep[torch.arange(b), target] = False
    return selector[keep].reshape(b, k - 1, k)


def competitor_classes(target: Tensor, num_classes: int) -> Tensor:
    """The classes ``i ≠ t`` in order, per sample: ``[B, K−1]``."""
    classes = torch.arange(num_classes, device=target.device).expand(target.shape[0], -1)
    return classes[classes != target[:, None]].reshape(target.shape[0], num_classes - 1)


def scaled_margins(margins: Tensor, margin_gram: Tensor, sigma: float) -> tuple[Tensor, Tensor]:
    """Return ``z_i = g_i / (σ‖∇g_i‖)`` and the correlation matrix ``U Uᵀ`` of the margin gradients.

    Args:
        margins: ``g``, ``[B, m]``.
        margin_gram: ``H_ij = ∇g_iᵀ ∇g_j``, ``[B, m, m]``.
        sigma: noise standard deviation ``σ > 0``.

    Returns:
        ``(z [B, m], correlation [B, m, m])`` in float64. A margin whose gradient vanishes never
        moves: ``z = +∞`` when it is positive (the constraint always holds), ``−∞`` when negative,
        and ``0`` for an exact tie. Its correlation row is that of an independent coordinate.
        The correlation is diagonally loaded by :data:`CORRELATION_JITTER` and rescaled to a unit
        diagonal, so that it is positive definite.
    """
    g, h = margins.double(), margin_gram.double()
    norms = torch.diagonal(h, dim1=1, dim2=2).clamp_min(0.0).sqrt()
    flat = norms <= torch.finfo(torch.float64).tiny
    safe = torch.where(flat, torch.ones_like(norms), norms)
    z = g / (sigma * safe)
    z = torch.where(flat, torch.sign(g) * torch.inf, z)
    z = torch.nan_to_num(z, nan=0.0, posinf=torch.inf, neginf=-torch.inf)  # 0 · ∞ for ties
    corr = h / (safe[:, :, None] * safe[:, None, :])
    eye = torch.eye(g.shape[1], dtype=torch.float64, device=g.device)
    isolated = flat[:, :, None] | flat[:, None, :]
    corr = torch.where(isolated, eye.expand_as(corr), corr)
    corr = 0.5 * (corr + corr.transpose(1, 2))
    return z, (corr + CORRELATION_JITTER * eye) / (1.0 + CORRELATION_JITTER)


def bracketing_bounds(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounds on the orthant probability ``Φ_{UUᵀ}(z)`` that hold for every correlation.

    ``max(0, 1 − Σ_i Φ(−z_i)) ≤ Φ_{UUᵀ}(z) ≤ min_i Φ(z_i)``: Boole's inequality on the union
    of the events ``s_i > z_i``, and the probability of the least likely single constraint.

    Args:
        z: ``[B, m]`` scaled margins (``±∞`` allowed).

    Returns:
        ``(lower, upper)``, each ``[B]``; both are 1 when ``m = 0``.
    """
    z = np.asarray(z, dtype=np.float64)
    lower = np.clip(1.0 - ndtr(-z).sum(axis=1), 0.0, 1.0)
    upper = ndtr(z).min(axis=1, initial=1.0)
    return lower, upper


def mv_sigmoid(z: np.ndarray) -> np.ndarray:
    """The closed-form approximation ``1 / (1 + Σ_i exp(−z_i))``, ``[B, m] -> [B]``.

    If every ``‖∇g_i‖`` equals ``c`` this is ``softmax(z_logits / (σ c))_t``: a softmax at
    temperature ``σ c``, the paper's link between noise robustness and the softmax. It is
    crude for several competitors at similar ``z`` (for ``z = (2, 2.5, 3, 3)`` it gives 0.76
    where the orthant probability is 0.97), but it is differentiable and needs no integration.
    """
    z = np.asarray(z, dtype=np.float64)
    with np.errstate(over="ignore"):  # exp(−z) → ∞ for z → −∞ gives the right limit, 0
        return 1.0 / (1.0 + np.exp(-z).sum(axis=1))


def orthant_probability(
    z: np.ndarray,
    correlation: np.ndarray,
    *,
    competitors: int | None = None,
    tolerance: float = 1e-4,
    maxpts: int | None = None,
    seed: int = 0,
    first_index: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``Φ_{UUᵀ}(z) = P[s ≤ z]`` for ``s ∼ N(0, UUᵀ)``, per sample, with its truncation error.

    Constraints with ``z_i > 8`` are dropped (each moves the value by less than ``1e-15``).
    Of the rest, the ``competitors`` with the smallest ``z`` (the nearest competitors)
    enter the integral: with fewer constraints the value can only grow, so the result is an
    upper bound on the full probability and exceeds it by at most ``Σ_dropped Φ(−z_i)``, which is
    returned. One and two constraints are closed forms (``Φ`` and the bivariate normal CDF);
    more go to SciPy's randomised quasi-Monte Carlo integrator (Genz's method), seeded per
    sample.

    Args:
        z: ``[B, m]`` scaled margins.
        correlation: ``[B, m, m]`` positive-definite correlation matrices.
        competitors: at most this many constraints per sample (``None``: all).
        tolerance: absolute and relative error target of the integrator.
        maxpts: the integrator's sample cap (``None``: SciPy's default, ``10⁶ · m``).
        seed: seed of the integrator; sample ``b`` uses ``(seed, first_index + b)``, so a
            value does not depend on how the inputs were batched.
        first_index: index of the first sample in the whole input set.

    Returns:
        ``(probability [B], truncation_error [B])``.
    """
    z = np.asarray(z, dtype=np.float64)
    correlation = np.asarray(correlation, dtype=np.float64)
    values = np.empty(len(z))
    truncation = np.zeros(len(z))
    for b, (zb, cb) in enumerate(zip(z, correlation)):
        if np.any(zb == -np.inf):  # a margin that is negative and never moves
            values[b] = 0.0
            continue
        order = np.argsort(zb, kind="stable")
        keep = order[zb[order] <= Z_NEGLIGIBLE]
        if competitors is not None:
            keep = keep[:competitors]
        dropped = np.setdiff1d(np.arange(len(zb)), keep)
        truncation[b] = ndtr(-zb[dropped]).sum()
        sub_corr = cb[np.ix_(keep, keep)]
        values[b] = _orthant(zb[keep], sub_corr, tolerance, maxpts, seed, first_index + b)
    return np.clip(values, 0.0, 1.0), truncation


def _orthant(
    z: np.ndarray, corr: np.ndarray, tolerance: float, maxpts: int | None, seed: int, index: int
) -> float:
    if z.size == 0:
        return 1.0
    if z.size == 1:
        return float(ndtr(z[0]))
    dist = multivariate_normal(
        mean=np.zeros(z.size), cov=corr, seed=np.random.default_rng([seed, index]),
        maxpts=maxpts if maxpts is not None else 1_000_000 * z.size,
        abseps=tolerance, releps=tolerance,
    )
    return float(dist.cdf(z))
