r"""Proof that classes left out of a robust radius cannot set it, and which to add when they might.

The matrix-free route takes the radius over the label ``y`` and a subset ``S`` of competitors
(the nearest by logit margin). A minimum over fewer classes can only be larger, so the subset
radius is optimistic unless every omitted class ``j ∉ S`` provably has a ratio at least as
large. Every margin ``g_j = z_y − z_j`` is known from the logits; given upper bounds
``U_j ≥ ‖∇g_j‖_{q*}`` (:mod:`art_fim.margin_norm_bound`), ``L_j = g_j / U_j`` is a lower bound
on omitted class ``j``'s ratio, and:

* **first-order radius** (unconstrained, or inside the box): the subset radius ``r_S`` is the
  true one if ``L_j ≥ r_S`` for every omitted ``j``. Inside the box, each class's distance
  ``D_q(g_j, ∇g_j)`` is never below ``g_j / ‖∇g_j‖_{q*} ≥ L_j``, so the same test proves the
  box radius;
* **refined radius**: the refinement re-measures the gradients of the ``k`` competitors with
  the smallest first-order ratio (``refine_competitors``) at the boundary point and keeps the
  others' norms at ``x``. If moreover ``L_j > ρ_k``, the ``k``-th smallest ratio among the
  computed competitors, no omitted class is among those ``k`` over all classes, so the same
  classes are re-measured at the same boundary point as on the exact route, and each omitted
  class's term, ``g_j / ‖∇g_j‖ ≥ L_j > ρ_k ≥ r_S`` (or its box distance, ``≥ L_j``), stays
  above the refined radius, which is never above the first-order one. No gradient at the
  boundary point is needed for omitted classes.

Where wrong (some ``g_j ≤ 0``), the radius is 0 on both routes: the smallest margins are the
first competitors kept. When an input is not proven, the omitted classes that fail the test
are exactly those whose rows would settle it: once computed, their exact ratios enter the
minimum, and every remaining omitted class still satisfies ``L_j ≥`` the old threshold ``≥``
the new one; :func:`competitors_to_add` picks them (the smallest ``L_j`` first, then the
nearest remaining by margin to fill a batch's columns). All functions are pure tensor maths.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def omitted_classes(classes: Tensor, num_classes: int) -> Tensor:
    """Return the classes not in each row of ``classes`` (``[B, c]`` indices), ``[B, K]`` bool."""
    kept = torch.zeros(classes.shape[0], num_classes, dtype=torch.bool, device=classes.device)
    return ~kept.scatter(1, classes, True)


def ratio_lower_bounds(margin: Tensor, bounds: Tensor, labels: Tensor) -> Tensor:
    """Return ``L_j = g_j / U_j`` per class, ``[B, K]`` float64 (``+inf`` at the label).

    A positive margin over a zero bound is ``+inf`` (its gradient is zero); a non-positive
    margin gives ``L_j ≤ 0``.

    Args:
        margin: ``[B, K]`` margins ``z_y − z_j`` of every class.
        bounds: ``[B, K]`` upper bounds on their gradients' dual norms.
        labels: ``[B]`` class indices.
    """
    ratio = margin.double() / bounds.double()
    ratio = torch.where(bounds > 0, ratio, torch.where(margin > 0, math.inf, -math.inf))
    return ratio.scatter(1, labels[:, None], math.inf)


def kth_ratio(ratios: Tensor, rank: int) -> Tensor:
    """Return the ``rank``-th smallest of each row (``+inf`` when a row has fewer), ``[B]``.

    Args:
        ratios: ``[B, c]`` first-order ratios of the computed competitors (``+inf`` at the
            label's column).
        rank: ``k ≥ 1``.
    """
    if rank > ratios.shape[1]:
        return torch.full(ratios.shape[:1], math.inf, dtype=ratios.dtype, device=ratios.device)
    return ratios.double().kthvalue(rank, dim=1).values


def undecided(
    lower: Tensor, omitted: Tensor, radius: Tensor, refine_threshold: Tensor | None = None
) -> Tensor:
    """Return the omitted classes that could set the radius, ``[B, K]`` bool.

    An omitted class is settled when ``L_j ≥ radius`` (and ``L_j > refine_threshold``, the
    ``k``-th computed ratio, when the refined radius is to be proven too); nothing is
    undecided where the radius is 0 (a wrong prediction, set by a kept class).

    Args:
        lower: ``[B, K]`` lower bounds ``L_j`` (:func:`ratio_lower_bounds`).
        omitted: ``[B, K]`` the classes left out (:func:`omitted_classes`).
        radius: ``[B]`` the radius over the kept classes (first-order, box or not).
        refine_threshold: ``[B]`` ``ρ_k`` (:func:`kth_ratio`), or ``None`` for the first-order
            radius alone.
    """
    settled = lower >= radius[:, None]
    if refine_threshold is not None:
        settled &= lower > refine_threshold[:, None]
    return omitted & ~settled & (radius > 0)[:, None]


def competitors_to_add(
    margin: Tensor, omitted: Tensor, open_classes: Tensor, limit: int
) -> Tensor:
    """Return the classes whose rows to compute next, ``[B, e]`` with ``e ≤ limit`` (may be 0).

    Each row holds its undecided classes, then the other omitted classes, each group in
    margin order, so that every row has ``e = min(limit, most undecided in a row)`` distinct
    omitted classes (a settled class's row only adds one more exact ratio).

    Args:
        margin: ``[B, K]`` margins of every class.
        omitted: ``[B, K]`` the classes left out.
        open_classes: ``[B, K]`` the undecided ones (:func:`undecided`).
        limit: the most classes to add per input.
    """
    count = min(int(limit), int(open_classes.sum(1).max()) if open_classes.numel() else 0)
    if count == 0:
        return torch.zeros(margin.shape[0], 0, dtype=torch.int64, device=margin.device)
    group = torch.where(open_classes, 0, torch.where(omitted, 1, 2))  # kept classes last
    order = margin.double().argsort(dim=1, stable=True)
    order = order.gather(1, group.gather(1, order).argsort(dim=1, stable=True))
    return order[:, :count]


def merge_classes(classes: Tensor, extra: Tensor) -> tuple[Tensor, Tensor]:
    """Return the sorted union of each row's ``classes`` and ``extra``, and the sorting order.

    Args:
        classes: ``[B, c]`` kept classes (sorted).
        extra: ``[B, e]`` classes to add (none of them in ``classes``).

    Returns:
        ``[B, c + e]`` sorted classes, and ``[B, c + e]`` each sorted column's index into
        ``torch.cat([classes, extra], 1)``.
    """
    joined = torch.cat([classes, extra], dim=1)
    merged, order = joined.sort(dim=1)
    return merged, order
