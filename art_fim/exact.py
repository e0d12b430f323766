"""Exact input-Fisher spectrum from the ``K × K`` Gram matrix.

The input Fisher of a softmax model is ``F = Jᵀ M J`` with ``M = diag(p) − p pᵀ``
(Zhang et al., https://arxiv.org/abs/2606.04767). Writing ``M = S Sᵀ`` with
``S = diag(√p) − p √pᵀ`` (``S Sᵀ = diag(p) − 2ppᵀ + (Σp) ppᵀ = M``), the ``d × d`` matrix
``F = (JᵀS)(JᵀS)ᵀ`` has the same non-zero eigenvalues as the ``K × K`` matrix

.. math::  B = Sᵀ (J Jᵀ) S,

so ``λ_max(F) = λ_max(B)``, computed exactly in float64 from the ``K`` Jacobian rows.
Also exact: ``tr F = tr(M J Jᵀ) = Σ_k p_k G_kk − pᵀ G p`` and the top eigenvector
``v = Jᵀ S u / √λ`` for the top eigenvector ``u`` of ``B``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from art_fim.jacobian import InputJacobian, gram_from_rows


def softmax_covariance_root(p: Tensor) -> Tensor:
    """Return ``S = diag(√p) − p √pᵀ`` with ``S Sᵀ = diag(p) − p pᵀ``; ``[B, K] -> [B, K, K]``."""
    root = p.sqrt()
    return torch.diag_embed(root) - p[:, :, None] * root[:, None, :]


def fisher_gram(gram: Tensor, p: Tensor) -> Tensor:
    """Return ``Sᵀ G S``: the ``K × K`` matrix sharing the input Fisher's non-zero spectrum.

    Args:
        gram: ``J Jᵀ``, ``[B, K, K]``.
        p: output probabilities, ``[B, K]``.

    Returns:
        ``[B, K, K]`` symmetric positive semi-definite matrices, float64.
    """
    s = softmax_covariance_root(p.double())
    b = s.transpose(1, 2) @ gram.double() @ s
    return 0.5 * (b + b.transpose(1, 2))  # symmetrise away rounding before eigh


def spectrum_from_gram(gram: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
    """Return eigenvalues (ascending) and eigenvectors of ``Sᵀ G S``, float64."""
    return torch.linalg.eigh(fisher_gram(gram, p))


def trace_from_gram(gram: Tensor, p: Tensor) -> Tensor:
    """Return ``tr F = Σ_k p_k G_kk − pᵀ G p`` per sample, float64 ``[B]``."""
    g, p = gram.double(), p.double()
    diag = (p * torch.diagonal(g, dim1=1, dim2=2)).sum(-1)
    quad = torch.einsum("bk,bkl,bl->b", p, g, p)
    return (diag - quad).clamp_min(0.0)


def spectral_statistics(
    rows: Tensor, p: Tensor, eigenvector: bool = False
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Return ``λ_max(F)``, ``tr F`` and (optionally) the top unit eigenvector from ``J`` itself.

    One Gram ``G = J Jᵀ`` serves all three; the eigenvector ``v = Jᵀ S u / ‖Jᵀ S u‖`` is formed
    from the same rows, with no further product with the model.

    Args:
        rows: the Jacobian ``[B, K, d]``.
        p: output probabilities ``[B, K]``.
        eigenvector: also return ``v``.

    Returns:
        ``λ_max`` ``[B]``, ``tr F`` ``[B]`` and ``v`` ``[B, d]`` (or ``None``), float64.
    """
    gram = gram_from_rows(rows)
    eigenvalues, eigenvectors = spectrum_from_gram(gram, p)
    vector = None
    if eigenvector:
        u = (softmax_covariance_root(p.double()) @ eigenvectors[:, :, -1:])[:, :, 0]
        # Jᵀ S u one class at a time: float64 without a float64 copy of all the rows.
        v = sum(rows[:, k].double() * u[:, k : k + 1] for k in range(rows.shape[1]))
        vector = v / v.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
    return eigenvalues[:, -1].clamp_min(0.0), trace_from_gram(gram, p), vector


def exact_spectral_norm(jac: InputJacobian) -> Tensor:
    """Return ``λ_max(F(x))`` per sample, float64 ``[B]``, from ``K`` VJPs.

    Args:
        jac: the batch's input Jacobian.

    Returns:
        The largest eigenvalue of each sample's input Fisher.
    """
    eigenvalues, _ = spectrum_from_gram(jac.gram(), jac.probs)
    return eigenvalues[:, -1].clamp_min(0.0)


def exact_trace(jac: InputJacobian) -> Tensor:
    """Return ``tr F(x)`` per sample, float64 ``[B]``."""
    return trace_from_gram(jac.gram(), jac.probs)


def top_eigenvector(jac: InputJacobian) -> tuple[Tensor, Tensor]:
    """Return ``(λ_max, v)``: the top eigenvalue ``[B]`` and unit eigenvector ``[B, d]`` of F.

    ``v = Jᵀ S u / ‖Jᵀ S u‖`` where ``u`` is the top eigenvector of ``Sᵀ G S``; the direction
    along which ``KL(p(x) ‖ p(x + δ)) ≈ ½ δᵀ F δ`` grows fastest (a one-step spectral attack).
    """
    eigenvalue, _, vector = spectral_statistics(jac.rows(), jac.probs, eigenvector=True)
    return eigenvalue, vector
