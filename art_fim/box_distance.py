r"""Exact distance to a linear margin's zero set inside the input box ``[low, high]``.

The first-order radius (:mod:`art_fim.margins`) divides each margin by its gradient's dual
norm, ``g / ‖a‖_{q*}``: the distance to the hyperplane ``g + aᵀδ = 0`` in ``ℓq``. That
hyperplane may be reachable only by leaving the pixel box, so the radius is too small wherever
the box binds. For one linear margin ``g(x + δ) = g + aᵀδ`` with ``g > 0`` this module solves

.. math::  D_q = \min ‖δ‖_q \quad \text{s.t.} \quad g + aᵀδ ≤ 0,\; low ≤ x + δ ≤ high

exactly, and returns ``+inf`` when even the best corner of the box leaves the margin positive.

**Reduction to magnitudes.** Moving coordinate ``i`` against ``sign(a_i)`` lowers the margin by
``|a_i|`` per unit, up to its *capacity* ``c_i = x_i − low_i`` (``a_i > 0``) or ``high_i − x_i``
(``a_i < 0``); moving it the other way raises both the margin and the norm, so an optimum has
``δ_i = −sign(a_i) u_i`` with ``0 ≤ u_i ≤ c_i`` and the problem is

.. math::  \min ‖u‖_q \quad \text{s.t.} \quad Σ_i |a_i| u_i ≥ g,\; 0 ≤ u ≤ c,

reachable iff ``g ≤ S = Σ_i |a_i| c_i``. Every constraint but one is a separable bound, so
the KKT conditions give each ``u_i`` as a clipped function of one multiplier:

* ``ℓ∞`` (a linear program in ``(u, t)``): ``u_i = min(t, c_i)`` with the smallest ``t`` such
  that ``Σ |a_i| min(t, c_i) ≥ g``; ``D = t``.
* ``ℓ2`` (a strictly convex QP, the projection of ``x`` onto the box ∩ halfspace): stationarity
  of ``½‖u‖² − λ(Σ |a_i| u_i − g)`` over ``[0, c_i]`` gives ``u_i = min(λ|a_i|, c_i)``, with
  ``λ > 0`` solving ``Σ |a_i| min(λ|a_i|, c_i) = g`` (the constraint is active since ``g > 0``);
  ``D = ‖u‖₂``.
* ``ℓ1`` (a fractional knapsack): each unit of ``u_i`` costs 1 and buys ``|a_i|``, so the LP
  fills coordinates in decreasing ``|a_i|`` up to ``c_i`` until ``g`` is bought; ``D = Σ u_i``.

The ``ℓ∞`` and ``ℓ2`` equations are ``Σ_i s_i min(λ, β_i) = g``: nondecreasing, concave and
piecewise linear in ``λ`` with breakpoints ``β_i`` (``β = c, s = |a|`` for ``ℓ∞``;
``β = c/|a|, s = a²`` for ``ℓ2``). Sorting the breakpoints and taking cumulative sums evaluates
the function at all of them at once; the first breakpoint where it reaches ``g`` brackets the
root, found there in closed form. The ``ℓ1`` greedy is a sort and a cumulative sum too. Each
margin costs ``O(d log d)`` time and ``O(d)`` memory; all are batched ``[B, C, d]``.

Without a box (``low = −inf``, ``high = +inf``) the capacities are infinite and each case reduces
to ``g / ‖a‖_{q*}``, the first-order formula. For a linear (multinomial) model ``z = W x + b``,
the minimum of ``D_q`` over the competitors is the exact distance from ``x`` to a point of the
box classified otherwise (:mod:`art_fim.box_search` takes that minimum).

All functions take flattened inputs and return float64; zero gradient entries have no capacity
(they cannot move the margin) and never produce NaN.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from art_fim.norms import parse_norm

# Elements of the float64 [rows, d] working arrays formed at once (32 MiB each; the sort,
# the cumulative sums and the masks keep about ten of them alive).
_CHUNK_ELEMENTS = 2**22


def _bound(value: Tensor | float | None, x: Tensor, default: float) -> Tensor:
    """Return one side of the box as float64 ``[B, d]``.

    ``value`` is ``None`` (``default``), a number, ``[d]``, ``[*input_shape]`` or ``[B, d]``.
    """
    if value is None:
        return torch.full_like(x, default)
    value = torch.as_tensor(value, dtype=torch.float64, device=x.device)
    if value.numel() == x.shape[1]:
        value = value.reshape(x.shape[1])
    elif value.numel() == x.numel():
        value = value.reshape(x.shape)
    return value.broadcast_to(x.shape)


def _exclusive_cumsum(v: Tensor) -> Tensor:
    """``Σ_{j<k} v_j`` along the last axis, without forming ``inf − inf``."""
    total = v.cumsum(-1)
    return torch.cat([torch.zeros_like(total[..., :1]), total[..., :-1]], dim=-1)


def _clipped_level(
    slope: Tensor, breakpoint: Tensor, mass: Tensor, g: Tensor
) -> tuple[Tensor, Tensor]:
    """Smallest ``λ ≥ 0`` with ``h(λ) = Σ_i s_i min(λ, β_i) ≥ g``, per row of ``[N, d]``.

    Args:
        slope: ``s ≥ 0``.
        breakpoint: ``β ≥ 0`` (possibly ``+inf``), zero where ``s = 0``.
        mass: ``s β``, each term's saturated value, zero where ``s = 0`` (passed in so that it
            is exact, not the product of a rounded ``s`` and ``β``).
        g: ``[N]`` targets.

    Returns:
        ``λ`` ``[N]`` (``+inf`` where ``h(∞) = Σ s_i β_i < g``) and the reachable mask ``[N]``.
    """
    beta, order = breakpoint.sort(-1)
    s, m = slope.gather(-1, order), mass.gather(-1, order)
    before = _exclusive_cumsum(m)  # Σ_{j<k} s_j β_j: the terms saturated below β_k
    after = s.flip(-1).cumsum(-1).flip(-1)  # Σ_{j≥k} s_j: the slope of h just below β_k
    # h(β_k); β_k = +inf only where s_k > 0, so after_k > 0 and there is no 0 · inf.
    level = before + beta * after
    crossed = level >= g[:, None]
    reachable = crossed.any(-1)
    k = crossed.to(torch.int8).argmax(-1, keepdim=True)  # the first breakpoint with h ≥ g
    # h(β_{k−1}) < g ≤ h(β_k), so h rises on [β_{k−1}, β_k] with slope after_k > 0.
    slope_k = after.gather(-1, k)[:, 0]
    upper = beta.gather(-1, k)[:, 0]
    lower = torch.where(k[:, 0] > 0, beta.gather(-1, (k - 1).clamp_min(0))[:, 0], 0.0)
    root = (g - before.gather(-1, k)[:, 0]) / torch.where(slope_k > 0, slope_k, 1.0)
    root = torch.where(slope_k > 0, root, upper)
    root = torch.minimum(torch.maximum(root, lower), upper)  # rounding must not leave the bracket
    return torch.where(reachable, root, math.inf), reachable


def _moves(weight: Tensor, capacity: Tensor, g: Tensor, norm: float) -> tuple[Tensor, Tensor]:
    """The optimal magnitudes ``u`` ``[N, d]`` (module docstring) and the reachable mask ``[N]``.

    ``weight = |a|``; ``capacity = c`` is zero where the weight is zero. Rows with ``g ≤ 0``
    come out as some feasible ``u`` (the caller replaces them by zero).
    """
    if norm == math.inf:
        t, reachable = _clipped_level(weight, capacity, weight * capacity, g)
        moves = torch.minimum(t[:, None].where(reachable[:, None], 0.0), capacity)
        return moves, reachable
    if norm == 2.0:
        # The problem is invariant to scaling (a, g) together; dividing by max |a| keeps a²
        # from underflowing for every entry above about 1e-154 times the largest (smaller
        # ones are dropped: they could move the margin by at most 1e-154 of the others).
        scale = weight.amax(-1)
        scale = torch.where(scale > 0, scale, 1.0)
        w = weight / scale[:, None]
        s = w * w
        w = torch.where(s > 0, w, 0.0)
        capacity = torch.where(s > 0, capacity, 0.0)
        beta = torch.where(s > 0, capacity / torch.where(s > 0, w, 1.0), 0.0)
        lam, reachable = _clipped_level(s, beta, w * capacity, g / scale)
        moves = torch.minimum(lam[:, None].where(reachable[:, None], 0.0) * w, capacity)
        return moves, reachable
    # ℓ1: fill in decreasing |a_i|, each coordinate up to c_i.
    w, order = weight.sort(-1, descending=True)
    c = capacity.gather(-1, order)
    mass = torch.where(w > 0, w * c, 0.0)
    bought = mass.cumsum(-1)
    crossed = bought >= g[:, None]
    reachable = crossed.any(-1)
    k = crossed.to(torch.int8).argmax(-1, keepdim=True)  # the coordinate that completes g
    # mass_k ≥ g − bought_{k−1} > 0, so w_k > 0.
    w_k = w.gather(-1, k)
    partial = (g[:, None] - _exclusive_cumsum(mass).gather(-1, k)) / torch.where(w_k > 0, w_k, 1.0)
    partial = torch.minimum(partial.clamp_min(0.0), c.gather(-1, k))
    position = torch.arange(w.shape[-1], device=w.device)
    sorted_moves = torch.where(position < k, c, torch.where(position == k, partial, 0.0))
    sorted_moves = torch.where(reachable[:, None], sorted_moves, 0.0)
    return torch.zeros_like(sorted_moves).scatter(-1, order, sorted_moves), reachable


def _norm(u: Tensor, norm: float) -> Tensor:
    """``‖u‖_q`` over the last axis, for ``u ≥ 0``."""
    if norm == math.inf:
        return u.amax(-1)
    if norm == 2.0:
        return torch.linalg.vector_norm(u, dim=-1)
    return u.sum(-1)


def _solve_rows(
    g: Tensor, a: Tensor, down: Tensor, up: Tensor, norm: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Distances ``[N]``, magnitudes ``[N, d]`` and the reachable mask ``[N]``, row by row.

    Rows of margins ``g [N]``, gradients ``a [N, d]`` and capacities ``down = x − low``,
    ``up = high − x`` ``[N, d]``.
    """
    weight = a.abs()
    capacity = torch.where(a > 0, down, up)
    capacity = torch.where(weight > 0, capacity, 0.0)  # no 0 · inf where a_i cannot help
    if a.shape[-1] == 0:
        moves, reachable = a, torch.zeros_like(g, dtype=torch.bool)
    else:
        moves, reachable = _moves(weight, capacity, g, norm)
    distance = torch.where(reachable, _norm(moves, norm), math.inf)
    distance = torch.where(g > 0, distance, 0.0)
    distance = torch.where(g == math.inf, math.inf, distance)  # a column excluded by the caller
    return torch.where(torch.isnan(g), math.nan, distance), moves, reachable


def _capacities(
    x: Tensor, low: Tensor | float | None, high: Tensor | float | None, batch: int, dim: int
) -> tuple[Tensor, Tensor]:
    """``x − low`` and ``high − x`` as float64 ``[B, d]``, clamped at zero.

    ``x`` is assumed in the box; a coordinate outside counts as on the face it crossed.
    """
    x = x.double().reshape(batch, -1)
    if x.shape[1] != dim:
        raise ValueError(f"x has {x.shape[1]} features per input but the gradients have {dim}")
    down = (x - _bound(low, x, -math.inf)).clamp_min(0.0)
    up = (_bound(high, x, math.inf) - x).clamp_min(0.0)
    return down, up


def box_margin_distance(
    margin: Tensor,
    gradients: Tensor,
    x: Tensor,
    low: Tensor | float | None = None,
    high: Tensor | float | None = None,
    norm: float = math.inf,
) -> Tensor:
    """Return ``D_q = min ‖δ‖_q`` s.t. ``g + aᵀδ ≤ 0``, ``low ≤ x + δ ≤ high``, per margin.

    The exact distance, inside the box, to the zero set of each linear margin (module
    docstring); ``0`` where ``g ≤ 0``, ``+inf`` where no point of the box closes the margin,
    ``NaN`` where ``g`` is NaN. Without a box it equals ``g / ‖a‖_{q*}``.

    Args:
        margin: ``[B, C]`` margins ``g`` (e.g. ``z_y − z_j`` for ``C`` competitors).
        gradients: ``[B, C, d]`` their gradients ``a = ∇g`` (any float dtype; used in float64).
        x: ``[B, d]`` (or ``[B, *input_shape]``) inputs, inside the box.
        low: lower box bound, ``None`` (``−inf``), a number, ``[d]`` or ``[B, d]``.
        high: upper box bound, likewise (``+inf`` when ``None``).
        norm: the threat norm ``q`` (:func:`art_fim.norms.parse_norm`).

    Returns:
        ``[B, C]`` float64 distances.

    Raises:
        ValueError: an unknown norm or mismatched shapes.

    Example:
        >>> import torch
        >>> g = torch.tensor([[0.6]], dtype=torch.float64)
        >>> a = torch.tensor([[[1.0, 1.0]]], dtype=torch.float64)
        >>> x = torch.tensor([[0.1, 0.5]], dtype=torch.float64)
        >>> box_margin_distance(g, a, x, 0.0, 1.0, norm=float("inf"))  # t: 0.1 + t = 0.6
        tensor([[0.5000]], dtype=torch.float64)
        >>> box_margin_distance(g, a, x, norm=float("inf"))  # no box: g / ‖a‖₁
        tensor([[0.3000]], dtype=torch.float64)
    """
    norm = parse_norm(norm)
    batch, count, dim = gradients.shape
    if margin.shape != (batch, count):
        raise ValueError(f"margin has shape {tuple(margin.shape)}; expected {(batch, count)}")
    down, up = _capacities(x.to(gradients.device), low, high, batch, dim)
    flat_margin = margin.to(gradients.device).double().reshape(-1)
    out = torch.empty(batch * count, dtype=torch.float64, device=gradients.device)
    step = max(1, _CHUNK_ELEMENTS // max(1, dim))
    for start in range(0, batch * count, step):
        rows = torch.arange(start, min(start + step, batch * count), device=gradients.device)
        b, j = rows // count, rows % count
        a = gradients[b, j].double()  # only this chunk's rows, in float64
        out[rows] = _solve_rows(flat_margin[rows], a, down[b], up[b], norm)[0]
    return out.reshape(batch, count)


