r"""The ℓ∞ variant of the input-Fisher metric: ``max_{‖u‖∞ ≤ 1} uᵀ F(x) u``.

``λ_max(F) = max_{‖u‖₂≤1} uᵀFu`` measures the worst KL growth over an ℓ2 ball; an ℓ∞ threat
(every coordinate moved by up to ε) calls for the box instead:
``KL(p(x) ‖ p(x + εu)) ≈ ½ ε² uᵀFu`` with ``‖u‖∞ ≤ 1``. With the spectral decomposition
``F = Σ_i λ_i v_i v_iᵀ`` (rank ≤ K − 1, from the ``K × K`` problem of :mod:`art_fim.exact`),

.. math::  \max_i λ_i ‖v_i‖_1^2 \;≤\; \max_{‖u‖_∞≤1} uᵀ F u \;≤\; \sum_i λ_i ‖v_i‖_1^2,

the left at ``u = sign(v_i)``, the right from ``(v_iᵀu)² ≤ ‖v_i‖₁²``. Both are equal when F has
rank one (two classes), e.g. ``q(1−q)‖w‖₁²`` for a logistic model, against the ℓ2 value
``q(1−q)‖w‖₂²``. The ratio ``‖v‖₁² / ‖v‖₂² ≤ d`` is what separates an ℓ∞ from an ℓ2 notion
of sensitivity (Tsipras et al., https://arxiv.org/abs/1805.12152; notes in the trade-off example).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from art_fim.checks import OutputType
from art_fim.engine import Batch, BatchEngine, ExactPlan
from art_fim.exact import softmax_covariance_root, spectrum_from_gram
from art_fim.jacobian import InputJacobian
from art_fim.options import Options
from art_fim.precision import Precision


class LinfBounds(NamedTuple):
    """Lower and upper bounds on ``max_{‖u‖∞≤1} uᵀ F u`` per input."""

    lower: Any
    upper: Any


def linf_fisher_bounds(jac: InputJacobian) -> tuple[Tensor, Tensor]:
    """Bounds on ``max_{‖u‖∞≤1} uᵀ F u`` per sample: ``(max_i λ_i‖v_i‖₁², Σ_i λ_i‖v_i‖₁²)``.

    ``√λ_i v_i = Jᵀ S u_i`` for the eigenvectors ``u_i`` of ``Sᵀ (J Jᵀ) S``
    (``S Sᵀ = diag p − ppᵀ``),
    so each term is one VJP: ``λ_i ‖v_i‖₁² = ‖Jᵀ S u_i‖₁²``, ``K`` VJPs after the Gram.

    Args:
        jac: the batch's input Jacobian.

    Returns:
        ``(lower [B], upper [B])`` in float64; equal for two classes.
    """
    p = jac.probs
    _, eigenvectors = spectrum_from_gram(jac.gram(), p)
    cotangents = softmax_covariance_root(p) @ eigenvectors  # column i: S u_i
    terms = torch.stack(
        [
            jac.vjp(cotangents[:, :, i].to(jac.dtype)).double().abs().sum(-1).square()
            for i in range(p.shape[1])
        ],
        dim=1,
    )
    return terms.max(1).values, terms.sum(1)


def fisher_linf_bounds(
    classifier: Any,
    x: np.ndarray,
    batch_size: int = 128,
    output_type: OutputType = "auto",
    precision: Precision = "float32",
    memory_budget: int | None = None,
    verbose: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds on the ℓ∞ input-Fisher value ``max_{‖u‖∞≤1} uᵀF(x)u`` per input.

    Exact (lower = upper) for binary classifiers. See :func:`linf_fisher_bounds`.

    | Paper link: https://arxiv.org/abs/2606.04767

    Args:
        classifier: An ART classifier with input gradients or an ``nn.Module`` in eval mode.
        x: Inputs ``[N, *input_shape]`` in the classifier's own scale.
        batch_size: Inputs per batch (reduced to fit ``memory_budget``).
        output_type: ``"auto"``, ``"logits"`` or ``"probabilities"``.
        precision: ``"float32"`` (default) or ``"tf32"`` (:mod:`art_fim.precision`).
        memory_budget: Peak bytes of one batch (the ``K`` Jacobian rows and their backward
            passes); default half the free GPU memory or 2 GiB on CPU.
        verbose: Show a progress bar.

    Returns:
        ``(lower, upper)``, each of shape ``[N]``.
    """
    options = Options(output_type, precision, memory_budget, verbose=verbose, batch_size=batch_size)
    _, (lower, upper) = BatchEngine(classifier, options).compute(_BoundsEstimator(), x)
    return lower, upper


class _BoundsEstimator:
    """The per-batch bounds of :func:`linf_fisher_bounds`, on the exact route's Jacobians."""

    access = "gradients"
    description = "ℓ∞ Fisher bounds"

    def plan(self, engine: BatchEngine, x: np.ndarray) -> ExactPlan:
        """All ``K`` rows per input within the budget."""
        return engine.exact_plan(x, engine.options.batch_size)

    def batch(self, engine: BatchEngine, batch: Batch, plan: ExactPlan) -> LinfBounds:
        """The bounds of one batch."""
        return LinfBounds(*linf_fisher_bounds(engine.adapter.jacobian(batch.x, plan.class_chunk)))
