"""Threat norms: their names, their duals, and the steepest descent direction in each.

A threat norm ``‖·‖_q`` (``q = ∞, 2, 1``, as ART's attacks take ``norm``) bounds a
perturbation; the first-order distance to a margin's zero set divides the margin by its
gradient's dual norm ``‖·‖_{q*}`` (``ℓ1`` for ``ℓ∞``, ``ℓ2`` for ``ℓ2``, ``ℓ∞`` for ``ℓ1``),
and the direction that lowers a margin fastest per unit of ``‖·‖_q`` attains it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

_NAMES = {math.inf: "linf", 2.0: "l2", 1.0: "l1"}


_ALIASES = {
    "inf": math.inf, "linf": math.inf, "l_inf": math.inf, "2": 2.0, "l2": 2.0, "1": 1.0, "l1": 1.0,
}


def parse_norm(norm: Any) -> float:
    """Return the threat norm as ``math.inf``, ``2.0`` or ``1.0``.

    Args:
        norm: ``np.inf`` (or ``"inf"``, ``"Linf"``), ``2`` (``"2"``, ``"L2"``) or ``1``
            (``"1"``, ``"L1"``), as ART's attacks take ``norm``.

    Raises:
        ValueError: any other norm.
    """
    if isinstance(norm, str):
        value = _ALIASES.get(norm.strip().lower())
    else:
        try:
            value = float(norm)
        except (TypeError, ValueError):
            value = None
    if value not in _NAMES:
        raise ValueError(f"norm must be np.inf, 2 or 1 (or 'inf', 'L2', 'L1'), got {norm!r}")
    return value


def norm_name(norm: Any) -> str:
    """Return ``"linf"``, ``"l2"`` or ``"l1"`` for a threat norm (see :func:`parse_norm`)."""
    return _NAMES[parse_norm(norm)]


def dual_norm(v: Tensor, norm: float) -> Tensor:
    """Return ``‖v‖_{q*}`` over the last axis, ``q*`` the dual of the threat norm ``q``."""
    if norm == math.inf:
        return v.abs().sum(-1)
    if norm == 2.0:
        return torch.linalg.vector_norm(v, dim=-1)
    return v.abs().amax(-1)


def steepest_descent(gradient: Tensor, norm: float) -> Tensor:
    """Return the unit-``‖·‖_q`` direction ``u`` minimising ``⟨gradient, u⟩``: ``[B, d] -> [B, d]``.

    ``ℓ∞``: ``−sign(g)``; ``ℓ2``: ``−g/‖g‖₂``; ``ℓ1``: ``−sign(g_i) e_i`` at ``i = argmax |g_i|``.
    In each case ``⟨g, u⟩ = −‖g‖_{q*}``; a zero gradient gives a zero direction.
    """
    if norm == math.inf:
        return -gradient.sign()
    if norm == 2.0:
        length = torch.linalg.vector_norm(gradient, dim=-1, keepdim=True)
        return -gradient / torch.where(length > 0, length, torch.ones_like(length))
    index = gradient.abs().argmax(-1, keepdim=True)
    return torch.zeros_like(gradient).scatter(-1, index, -gradient.gather(-1, index).sign())

