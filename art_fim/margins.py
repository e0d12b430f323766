r"""First-order robust radius: the linearised distance to the decision boundary, from ``J``.

For an input ``x`` with label ``y``, logits ``z`` and margins ``g_j = z_y − z_j`` (``j ≠ y``),
linearising each margin around ``x`` gives the distance to the boundary in the threat norm
``‖·‖_q`` (the classic bound of, e.g., Hein & Andriushchenko, https://arxiv.org/abs/1705.08475):

.. math::  r_q(x) = \min_{j ≠ y} \frac{z_y − z_j}{‖∇_x (z_y − z_j)‖_{q^*}},

with ``q*`` the dual norm (``ℓ1`` for an ``ℓ∞`` threat, ``ℓ2`` for ``ℓ2``, ``ℓ∞`` for ``ℓ1``),
and ``r = 0`` where the prediction is wrong (some ``g_j ≤ 0``). The fraction of inputs with
``r_q(x) ≥ ε`` estimates robust accuracy at ``ε`` without an attack. Properties:

* exact for a linear (multinomial) model without box constraints: the margins are linear, so
  the nearest competitor's hyperplane is the boundary of the decision region where the
  distance is attained;
* invariant to rescaling the logits (``z → c z`` scales margins and gradients alike), which
  ``λ_max`` of the input Fisher is not: a temperature leaves every attack's accuracy unchanged;
* optimistic where the margin's gradient grows on the way to the boundary (curved models) and
  meaningless where gradients are masked (they vanish at ``x`` but not nearby).

The refinement (:func:`boundary_point`, :func:`refined_radius`) takes one more Jacobian at
the first-order boundary point ``x' = x + r u`` (``u`` the steepest descent direction of the
nearest competitor's margin in the threat norm, clipped to the input box) and divides each
margin at ``x`` by the larger of its dual gradient norms at ``x`` and ``x'``: a local
Lipschitz bound of the margin on that segment. It is never larger than ``r``, still invariant
to the logits' scale, and equal to ``r`` for linear models.

All functions work on flattened inputs: ``rows`` is the logit Jacobian ``[B, K, d]``
(:meth:`art_fim.jacobian.InputJacobian.rows`) and results are float64.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from art_fim.norms import dual_norm, steepest_descent

# Elements of the float64 gradient differences formed at once (128 MiB).
_CHUNK_ELEMENTS = 2**24


def margins(logits: Tensor, labels: Tensor) -> Tensor:
    """Return ``z_y − z_k`` for every class ``k``, float64 ``[B, K]`` (zero at ``k = y``)."""
    z = logits.double()
    return z.gather(1, labels[:, None]) - z


def margin_dual_norms(rows: Tensor, labels: Tensor, norm: float) -> Tensor:
    """Return ``‖∇z_y − ∇z_k‖_{q*}`` for every class ``k``, float64 ``[B, K]`` (zero at ``k = y``).

    The differences are formed in float64 (exact for float32 rows), a sixteenth of the classes
    at a time and never more than :data:`_CHUNK_ELEMENTS` numbers.

    Args:
        rows: the logit Jacobian ``[B, K, d]``.
        labels: ``[B]`` class indices.
        norm: the threat norm (``math.inf``, ``2.0`` or ``1.0``).
    """
    batch, classes, dim = rows.shape
    own = rows[torch.arange(batch, device=rows.device), labels].double()[:, None, :]
    # A sixteenth of the classes at once: the differences and their absolute values then take
    # a quarter of float32 rows' memory (the float64 block art_fim.memory plans for).
    chunk = max(1, min(_CHUNK_ELEMENTS // max(1, batch * dim), -(-classes // 16)))
    parts = [
        dual_norm(own - rows[:, start : start + chunk].double(), norm)
        for start in range(0, classes, chunk)
    ]
    return torch.cat(parts, dim=1)


def gram_dual_norms(gram: Tensor, labels: Tensor) -> Tensor:
    """Return ``‖∇z_y − ∇z_k‖₂ = √(G_yy + G_kk − 2 G_yk)`` from ``G = J Jᵀ``, float64 ``[B, K]``.

    The ``ℓ2`` threat's dual norms need only the Gram matrix, so a sketch ``Ĝ`` of it (the
    query-only route) gives them too; rounding below zero is clamped.
    """
    g = gram.double()
    index = labels[:, None]
    own = g.gather(1, index[:, :, None].expand(-1, 1, g.shape[2]))[:, 0]  # G_y·
    diagonal = torch.diagonal(g, dim1=1, dim2=2)
    squared = own.gather(1, index) + diagonal - 2.0 * own
    return squared.clamp_min(0.0).sqrt()


def margin_ratios(margin: Tensor, norms: Tensor, labels: Tensor) -> Tensor:
    """``g_j / ‖∇g_j‖`` with the own class excluded (``+inf``) and ``g_j / 0 = +inf``."""
    ratio = margin / norms  # a positive margin over a zero norm is +inf, as intended
    ratio = torch.where(norms > 0, ratio, torch.full_like(ratio, math.inf))
    return ratio.scatter(1, labels[:, None], math.inf)


def radius_from_margins(margin: Tensor, norms: Tensor, labels: Tensor) -> Tensor:
    """Return ``min_{j≠y} g_j / n_j``, and ``0`` where some ``g_j ≤ 0`` (wrong or tied prediction).

    Args:
        margin: ``[B, K]`` margins ``g = z_y − z`` (:func:`margins`).
        norms: ``[B, K]`` dual norms of their gradients (or an upper bound on them).
        labels: ``[B]`` class indices.

    Returns:
        ``[B]`` float64 radii; ``+inf`` where every competitor's margin has a zero gradient.
    """
    others = margin.scatter(1, labels[:, None], math.inf)
    radius = margin_ratios(margin, norms, labels).amin(1)
    return torch.where(others.amin(1) > 0, radius, torch.zeros_like(radius))


def first_order_radius(rows: Tensor, logits: Tensor, labels: Tensor, norm: float) -> Tensor:
    """Return ``r_q(x) = min_{j≠y} (z_y − z_j) / ‖∇(z_y − z_j)‖_{q*}`` per sample, float64 ``[B]``.

    Args:
        rows: the logit Jacobian ``[B, K, d]``.
        logits: ``[B, K]`` logits (or log-probabilities: their differences are the same).
        labels: ``[B]`` class indices.
        norm: the threat norm (:func:`parse_norm`).
    """
    return radius_from_margins(
        margins(logits, labels), margin_dual_norms(rows, labels, norm), labels
    )


def boundary_point(
    x: Tensor,
    rows: Tensor,
    labels: Tensor,
    margin: Tensor,
    norms: Tensor,
    norm: float,
    bounds: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Return the first-order boundary point ``x' = clip(x + r u)`` per sample, float64 ``[B, d]``.

    ``r`` is the first-order radius and ``u`` the steepest descent direction (in the threat
    norm) of the nearest competitor's margin; where ``r`` is zero (wrong prediction) or
    infinite (no gradient), ``x' = x``.

    Args:
        x: ``[B, d]`` flattened inputs.
        rows: the logit Jacobian at ``x``, ``[B, K, d]``.
        labels: ``[B]`` class indices.
        margin: ``[B, K]`` margins at ``x`` (:func:`margins`).
        norms: ``[B, K]`` their dual gradient norms at ``x`` (:func:`margin_dual_norms`).
        norm: the threat norm.
        bounds: flattened ``(low, high)`` of the input box, ``[d]`` each, or ``None``.
    """
    nearest = margin_ratios(margin, norms, labels).argmin(1)
    radius = radius_from_margins(margin, norms, labels)
    step = torch.where(torch.isfinite(radius), radius, torch.zeros_like(radius))
    index = torch.arange(len(labels), device=rows.device)
    gradient = rows[index, labels].double() - rows[index, nearest].double()
    point = x.double() + step[:, None] * steepest_descent(gradient, norm)
    if bounds is not None:
        point = torch.minimum(torch.maximum(point, bounds[0].double()), bounds[1].double())
    return point


def refined_radius(
    margin: Tensor, norms_at_x: Tensor, norms_at_boundary: Tensor, labels: Tensor
) -> Tensor:
    """Return ``min_{j≠y} g_j(x) / max(‖∇g_j(x)‖_{q*}, ‖∇g_j(x')‖_{q*})``, float64 ``[B]``.

    Args:
        margin: ``[B, K]`` margins at ``x``.
        norms_at_x: ``[B, K]`` dual gradient norms of the margins at ``x``.
        norms_at_boundary: the same at the boundary point ``x'`` (:func:`boundary_point`).
        labels: ``[B]`` class indices.
    """
    return radius_from_margins(margin, torch.maximum(norms_at_x, norms_at_boundary), labels)


