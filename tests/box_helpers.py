"""Box-distance helpers the tests use as references: a minimiser, a masked minimum over competitors,
and the box radius from all ``K`` rows (the library searches the competitors instead,
:mod:`art_fim.box_search`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from art_fim.box_distance import _CHUNK_ELEMENTS, _capacities, _solve_rows, box_margin_distance
from art_fim.margins import margins
from art_fim.norms import parse_norm


def box_margin_step(
    margin: Tensor,
    gradient: Tensor,
    x: Tensor,
    low: Tensor | float | None = None,
    high: Tensor | float | None = None,
    norm: float = math.inf,
) -> Tensor:
    """Return a minimiser ``δ`` of :func:`box_margin_distance` for one margin per input, ``[B, d]``.

    ``δ_i = −sign(a_i) u_i`` with the KKT magnitudes ``u`` of the module docstring, so that
    ``x + δ`` lies in the box, ``g + aᵀδ = 0`` (up to rounding) and ``‖δ‖_q = D_q``. Zero where
    ``g ≤ 0``; NaN where the margin cannot be closed inside the box.

    Args:
        margin: ``[B]`` margins ``g``.
        gradient: ``[B, d]`` their gradients ``a``.
        x: ``[B, d]`` inputs, inside the box.
        low: lower box bound, as in :func:`box_margin_distance`.
        high: upper box bound, likewise.
        norm: the threat norm.

    Returns:
        ``[B, d]`` float64 steps.
    """
    norm = parse_norm(norm)
    batch, dim = gradient.shape
    down, up = _capacities(x.to(gradient.device), low, high, batch, dim)
    a = gradient.double()
    g = margin.to(gradient.device).double().reshape(batch)
    _, moves, reachable = _solve_rows(g, a, down, up, norm)
    step = -a.sign() * moves
    step = torch.where((g > 0)[:, None], step, 0.0)
    return torch.where((reachable | (g <= 0))[:, None], step, math.nan)


def box_radius(
    margin: Tensor,
    gradients: Tensor,
    x: Tensor,
    low: Tensor | float | None = None,
    high: Tensor | float | None = None,
    norm: float = math.inf,
    mask: Tensor | None = None,
) -> Tensor:
    """Return ``min_j D_q(g_j, a_j)`` over the competitors kept by ``mask``, float64 ``[B]``.

    The caller excludes the label's own column (its margin is zero, so its distance is zero):
    through ``mask``, or by passing a margin of ``+inf`` there. ``0`` where a kept margin is
    ``≤ 0`` (a wrong or tied prediction), ``+inf`` where no kept competitor is reachable.

    Args:
        margin: ``[B, C]`` margins.
        gradients: ``[B, C, d]`` their gradients.
        x: ``[B, d]`` inputs, inside the box.
        low: lower box bound, as in :func:`box_margin_distance`.
        high: upper box bound, likewise.
        norm: the threat norm.
        mask: ``[B, C]`` booleans, ``True`` for the competitors to keep; all when ``None``.
    """
    distance = box_margin_distance(margin, gradients, x, low, high, norm)
    if mask is not None:
        distance = torch.where(mask.to(distance.device), distance, math.inf)
    if distance.shape[1] == 0:
        return torch.full(distance.shape[:1], math.inf, dtype=torch.float64, device=distance.device)
    return distance.amin(1)


def box_first_order_radius(
    rows: Tensor,
    logits: Tensor,
    labels: Tensor,
    x: Tensor,
    low: Tensor | float | None = None,
    high: Tensor | float | None = None,
    norm: float = math.inf,
) -> Tensor:
    """Return the box radius ``min_{j≠y} D_q(z_y − z_j, ∇z_y − ∇z_j)`` per sample, ``[B]``.

    The box-aware counterpart of :func:`art_fim.margins.first_order_radius` (equal to it when
    ``low`` and ``high`` are ``None``, never smaller otherwise), and for a linear model the exact
    distance from ``x`` to a point of the box classified otherwise. The gradient differences
    are formed a few classes at a time.

    Args:
        rows: the logit Jacobian ``[B, K, d]``.
        logits: ``[B, K]`` logits.
        labels: ``[B]`` class indices.
        x: ``[B, d]`` (or ``[B, *input_shape]``) inputs, inside the box.
        low: lower box bound, as in :func:`box_margin_distance`.
        high: upper box bound, likewise.
        norm: the threat norm.
    """
    batch, classes, dim = rows.shape
    labels = labels.to(rows.device)
    margin = margins(logits.to(rows.device), labels).scatter(1, labels[:, None], math.inf)
    own = rows[torch.arange(batch, device=rows.device), labels].double()[:, None, :]
    chunk = max(1, _CHUNK_ELEMENTS // max(1, batch * dim))
    parts = [
        box_margin_distance(
            margin[:, start : start + chunk],
            own - rows[:, start : start + chunk].double(),
            x, low, high, norm,
        )
        for start in range(0, classes, chunk)
    ]
    return torch.cat(parts, dim=1).amin(1)

