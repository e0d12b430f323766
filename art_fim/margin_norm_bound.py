r"""Upper bounds on every class's margin-gradient dual norm from a few JVPs.

A radius taken over a subset of classes (the label and its nearest competitors) is the true
minimum only if no omitted class ``j`` has a smaller ratio ``g_j / ‖∇g_j‖_{q*}``, with
``g_j = z_y − z_j`` the margin (known for every class from the logits) and ``∇g_j`` its input
gradient (not computed for omitted classes). This module bounds ``‖∇g_j‖_{q*}`` from above for
*every* class at once, from Jacobian-vector products, each of which gives one number per class:

* **Known part.** With ``Q`` (``d × r``, orthonormal columns) spanning the rows already
  computed (the label's and the kept competitors'), the ``r`` products ``J q_k`` give
  ``Qᵀ ∇g_j`` exactly for every class. Margin gradients of similar classes share most of
  their directions (80% of ``‖∇g_j‖²`` at the median on a trained ``K = 1000`` CNN), so the
  projection ``P ∇g_j = Q Qᵀ ∇g_j`` is known exactly and only the residual is estimated.
* **Residual sketch.** With ``m`` probes ``v_i = (I − Q Qᵀ) ξ_i``, ``ξ_i ∼ N(0, I_d)``
  independent of the model, ``⟨∇g_j, v_i⟩ = (J v_i)_y − (J v_i)_j ∼ N(0, ‖(I − P)∇g_j‖²)``,
  so ``S_j = Σ_i ⟨∇g_j, v_i⟩²`` is exactly ``‖(I − P)∇g_j‖₂² · χ²_m`` and

  .. math::  P\big(‖(I − P)∇g_j‖_2^2 > S_j / χ^2_{m}(δ')\big) = δ',

  ``χ²_m(δ')`` the ``δ'`` quantile. With ``δ' = δ / (K − 1)`` for each class, the bounds of all
  classes of one input hold together with probability at least ``1 − δ`` (union bound). This
  is the Gaussian sketch of the query-only route, read as a one-sided bound per margin, with
  the known directions taken out first (as Hutch++ does for traces,
  https://arxiv.org/abs/2010.09649).
* **Dual norms.** ``‖a‖₂² = ‖Qᵀa‖₂² + ‖(I − P)a‖₂²``; for the ``ℓ∞`` threat's ``ℓ1`` norm,
  ``‖a‖₁ ≤ ‖P a‖₁ + √d ‖(I − P)a‖₂`` (``P a`` formed explicitly from its coefficients); for the
  ``ℓ1`` threat's ``ℓ∞`` norm, ``‖a‖_∞ ≤ ‖P a‖_∞ + ‖(I − P)a‖₂``.

Why not the Jacobian's largest singular value: ``‖∇g_j‖₂ ≤ √2 σ_max(J)`` is one number for
all classes, never below the largest margin gradient's norm (so loose for every smaller
one), and a Lanczos Ritz value is a *lower* estimate of ``σ_max²`` that needs the
Kuczyński–Woźniakowski argument (a random start, exact arithmetic) to become an upper bound;
the bound here follows each class's own norm, and its probability is exact (the χ² law).

What is proven: for one input, with probability at least ``1 − δ`` over the probes (drawn
from the input's own random stream, :mod:`art_fim.streams`), every class's bound holds, up to
the float32 rounding of the products (the same rounding every radius here carries). Cost:
``r + m`` JVPs per input, vectorised into forward-mode passes over copies of the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from scipy import stats
from torch import Tensor

from art_fim.norms import dual_norm

#: Random probes per input (``m``); the residual's bound is then at most
#: ``√(m / χ²_m(δ'))`` times its true norm (2.1× at ``δ = 10⁻³``, ``K = 1000``).
DEFAULT_PROBES = 32
#: Probability per input that some class's bound fails.
DEFAULT_FAILURE = 1e-3
# Numbers of the explicit projections P ∇g_j formed at once for the ℓ1 and ℓ∞ norms (128 MiB).
_CHUNK_ELEMENTS = 2**24

Jvp = Callable[[Tensor], Tensor]


def chi2_inflation(probes: int, failure: float) -> float:
    """Return ``√(m / χ²_m(δ))``: the sketch's root-mean-square times this bounds the norm.

    Args:
        probes: ``m``, the number of Gaussian probes.
        failure: ``δ``, the probability that the bound fails for one margin.
    """
    if not (0.0 < failure < 1.0):
        raise ValueError(f"failure must be in (0, 1), got {failure!r}")
    return math.sqrt(probes / float(stats.chi2.ppf(failure, probes)))


def stacked_jvp(jvp: Jvp) -> Callable[[Tensor], Tensor]:
    """Return ``V ↦ [J v for v in V]``, ``[c, B, d] -> [c, B, K]``, as one vectorised product.

    ``torch.func.vmap`` turns ``c`` forward-mode passes into one over ``c`` times the batch
    (2–3× faster than a loop on a CPU); operations it cannot batch fall back to the loop.
    """
    vectorised = torch.func.vmap(jvp)
    state = {"vmap": True}

    def products(vectors: Tensor) -> Tensor:
        if state["vmap"]:
            try:
                return vectorised(vectors)
            except (RuntimeError, NotImplementedError):
                state["vmap"] = False  # the loop from now on: same values, one pass each
        return torch.stack([jvp(v) for v in vectors])

    return products


def orthonormal_basis(rows: Tensor) -> Tensor:
    """Return ``Q`` with orthonormal columns spanning each input's ``rows``, ``[B, d, c]`` float64.

    Householder QR: ``Q`` is orthonormal also where the rows are dependent (its extra columns
    then point anywhere, which only adds known directions).
    """
    return torch.linalg.qr(rows.double().transpose(1, 2)).Q


def _chunked(jvp: Callable[[Tensor], Tensor], vectors: Tensor, chunk: int) -> Tensor:
    """``[c, B, d] -> [c, B, K]`` products, ``chunk`` vectors per call, float64."""
    return torch.cat([jvp(vectors[i : i + chunk]).double() for i in range(0, len(vectors), chunk)])


def _margin_of(products: Tensor, labels: Tensor) -> Tensor:
    """``[c, B, K]`` products ``J v`` -> ``⟨∇z_y − ∇z_j, v⟩``, ``[c, B, K]``."""
    return products.gather(2, labels[None, :, None].expand(len(products), -1, 1)) - products


def residual_sketch(
    jvp: Callable[[Tensor], Tensor],
    labels: Tensor,
    dim: int,
    basis: Tensor | None,
    probes: int,
    generators: Sequence[torch.Generator],
    probe_chunk: int | None = None,
) -> Tensor:
    """Return ``S_j = Σ_i ⟨∇g_j, (I − QQᵀ) ξ_i⟩²`` for every class, ``[B, K]`` (0 at the label).

    Args:
        jvp: ``[c, B, d] -> [c, B, K]``, ``c`` products ``J v`` at once (:func:`stacked_jvp`).
        labels: ``[B]`` class indices ``y``.
        dim: ``d``.
        basis: ``Q``, ``[B, d, r]`` orthonormal columns (:func:`orthonormal_basis`), or
            ``None`` for no known part.
        probes: ``m``.
        generators: one CPU generator per input, for its probes.
        probe_chunk: probes per call of ``jvp`` (default all ``m``), to bound its memory.
    """
    chunk = probes if probe_chunk is None else max(1, min(probes, int(probe_chunk)))
    total = None
    for start in range(0, probes, chunk):
        count = min(chunk, probes - start)
        # Input b's probes come from its own stream, one draw per probe, so that they do not
        # depend on the chunking (a draw of 16 numbers or more takes another code path).
        xi = torch.stack([
            torch.stack([torch.randn(dim, generator=g, dtype=torch.float64)
                         for g in generators])
            for _ in range(count)
        ]).to(labels.device)  # [c, B, d]
        if basis is not None:
            xi = xi - torch.einsum("bdr,cbr->cbd", basis, torch.einsum("bdr,cbd->cbr", basis, xi))
        squares = _margin_of(jvp(xi).double(), labels).square().sum(0)
        total = squares if total is None else total + squares
    assert total is not None  # probes ≥ 1
    return total


def margin_norm_bounds(
    jvp: Callable[[Tensor], Tensor],
    labels: Tensor,
    rows: Tensor,
    norms: Sequence[float],
    probes: int = DEFAULT_PROBES,
    failure: float = DEFAULT_FAILURE,
    generators: Sequence[torch.Generator] = (),
    probe_chunk: int | None = None,
) -> dict[float, Tensor]:
    """Upper bounds on ``‖∇z_y − ∇z_j‖_{q*}`` for every class ``j`` and threat norm ``q``.

    The known part is the projection onto the span of ``rows``; all norms share one residual
    sketch (:func:`residual_sketch`). With probability at least ``1 − failure`` per input, every
    class's bound of every norm holds.

    Args:
        jvp: ``[c, B, d] -> [c, B, K]``, ``c`` products ``J v`` at once (:func:`stacked_jvp`).
        labels: ``[B]`` class indices.
        rows: ``[B, r, d]`` Jacobian rows already computed (the label's and some competitors').
        norms: threat norms (``math.inf``, ``2.0``, ``1.0``).
        probes: ``m`` random probes per input.
        failure: ``δ``, the probability per input that some bound fails.
        generators: one CPU generator per input.
        probe_chunk: products per call of ``jvp`` (default all), to bound its memory.

    Returns:
        ``{norm: [B, K]}`` float64 bounds (0 at the label).
    """
    if len(generators) != len(labels):
        raise ValueError(f"need one generator per input: {len(generators)} for {len(labels)}")
    basis = orthonormal_basis(rows)  # [B, d, r]
    chunk = basis.shape[2] if probe_chunk is None else max(1, int(probe_chunk))
    known = _margin_of(_chunked(jvp, basis.permute(2, 0, 1), chunk), labels)  # [r, B, K]: Qᵀ∇g
    sketch = residual_sketch(jvp, labels, basis.shape[1], basis, probes, generators, probe_chunk)
    inflation = chi2_inflation(probes, failure / max(1, sketch.shape[1] - 1))
    residual = inflation * (sketch / probes).sqrt()  # bounds ‖(I − P) ∇g_j‖₂
    out = {}
    for norm in norms:
        if norm == 2.0:
            out[norm] = (known.square().sum(0) + residual.square()).sqrt()
            continue
        # ‖P∇g_j‖ in ℓ1 or ℓ∞ needs the projection itself: Q times its coefficients.
        dim, batch = basis.shape[1], basis.shape[0]
        # As many projections at once as the basis has columns: as much memory as the basis.
        step = max(1, min(_CHUNK_ELEMENTS // max(1, batch * dim), basis.shape[2]))
        projected = torch.cat([
            dual_norm(torch.einsum("bdr,rbk->bkd", basis, known[:, :, j : j + step]), norm)
            for j in range(0, known.shape[2], step)
        ], dim=1)
        out[norm] = projected + residual * (math.sqrt(dim) if norm == math.inf else 1.0)
    return out
