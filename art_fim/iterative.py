"""Matrix-free top-eigenvalue solvers over a batched, block-diagonal matvec.

Each sample ``b`` has its own symmetric positive semi-definite operator ``A_b`` (here the
input Fisher ``F(x_b)``); one call ``matvec(V[B, d])`` applies every ``A_b`` to its own row.
The solvers run all samples in lock-step, so the model sees batched products only.

Lanczos (with full re-orthogonalisation; Golub & Van Loan, *Matrix Computations*, §10.1)
converges in at most ``rank(F) + 1 ≤ K`` steps in exact arithmetic, because the Krylov
space of a rank-``r`` operator has dimension at most ``r + 1``. Power iteration is kept as
the simple baseline that the first paper's code ships (https://arxiv.org/abs/2606.04767).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from art_fim.hutchinson import Generators, sample_probes

Matvec = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class EigenResult:
    """Top eigenvalue per sample and how it was obtained.

    Attributes:
        values: ``[B]`` top eigenvalue estimates (float64).
        iterations: ``[B]`` matvecs until the sample met its tolerance (or the cap).
        converged: ``[B]`` whether the tolerance was met.
        residual: ``[B]`` final residual bound ``‖A y − θ y‖`` of the Ritz pair.
    """

    values: Tensor
    iterations: Tensor
    converged: Tensor
    residual: Tensor


def _unit_start(batch: int, dim: int, generator: Generators, device: torch.device) -> Tensor:
    v = sample_probes(batch, dim, "gaussian", generator).to(device)
    return v / v.norm(dim=-1, keepdim=True)


def lanczos(
    matvec: Matvec,
    batch: int,
    dim: int,
    *,
    num_iter: int = 50,
    tol: float = 1e-6,
    generator: Generators = None,
    device: torch.device | str = "cpu",
) -> EigenResult:
    """Largest eigenvalue of each block by the Lanczos method.

    At step ``j`` the tridiagonal ``T_j = Q_jᵀ A Q_j`` has Ritz pairs ``(θ, y)`` with
    residual ``‖A Q_j y − θ Q_j y‖ = β_j |y_j|``; a sample is converged when this is at most
    ``tol · θ``, or when ``β_j`` vanishes (its Krylov space is exhausted, so ``θ`` is exact).

    Args:
        matvec: ``[B, d] -> [B, d]``, each row multiplied by its own symmetric PSD matrix.
        batch: ``B``.
        dim: ``d``.
        num_iter: maximum number of Lanczos steps (matvecs).
        tol: relative residual tolerance.
        generator: random generator for the start vectors, or one per block.
        device: device of the vectors.

    Returns:
        An :class:`EigenResult`.
    """
    device = torch.device(device)
    num_iter = max(1, min(num_iter, dim))
    q = _unit_start(batch, dim, generator, device)
    basis = [q]
    alphas: list[Tensor] = []
    betas: list[Tensor] = []
    values = torch.zeros(batch, dtype=torch.float64, device=device)
    residual = torch.full_like(values, float("inf"))
    iterations = torch.full((batch,), num_iter, dtype=torch.long, device=device)
    converged = torch.zeros(batch, dtype=torch.bool, device=device)
    scale = torch.zeros_like(values)
    for step in range(num_iter):
        w = matvec(q).to(torch.float64)
        alpha = (w * q).sum(-1)
        w = w - alpha[:, None] * q
        if betas:
            w = w - betas[-1][:, None] * basis[-2]
        stacked = torch.stack(basis, dim=1)  # [B, j, d]
        for _ in range(2):  # full re-orthogonalisation, twice is enough (Kahan–Parlett)
            w = w - torch.einsum("bjd,bj->bd", stacked, torch.einsum("bjd,bd->bj", stacked, w))
        beta = w.norm(dim=-1)
        alphas.append(alpha)
        tridiagonal = torch.diag_embed(torch.stack(alphas, dim=1))
        if len(alphas) > 1:
            off = torch.diag_embed(torch.stack(betas, dim=1), offset=1)
            tridiagonal = tridiagonal + off + off.transpose(1, 2)
        theta, y = torch.linalg.eigh(tridiagonal)
        scale = torch.maximum(scale, alpha.abs() + beta)
        ritz_residual = beta * y[:, -1, -1].abs()
        exhausted = beta <= 1e-12 * scale.clamp_min(torch.finfo(torch.float64).tiny)
        newly = ~converged & ((ritz_residual <= tol * theta[:, -1].abs()) | exhausted)
        values = torch.where(converged, values, theta[:, -1])
        residual = torch.where(converged, residual, ritz_residual)
        iterations = torch.where(newly, torch.full_like(iterations, step + 1), iterations)
        converged = converged | newly
        if bool(converged.all()):
            break
        # A sample whose space is exhausted continues with q = 0: T gains a zero block,
        # which leaves its largest Ritz value unchanged (A is PSD).
        q = torch.where(
            exhausted[:, None], torch.zeros_like(w), w / beta.clamp_min(1e-300)[:, None]
        )
        basis.append(q)
        betas.append(torch.where(exhausted, torch.zeros_like(beta), beta))
    return EigenResult(values.clamp_min(0.0), iterations, converged, residual)


def power_iteration(
    matvec: Matvec,
    batch: int,
    dim: int,
    *,
    num_iter: int = 100,
    tol: float = 1e-6,
    generator: Generators = None,
    device: torch.device | str = "cpu",
) -> EigenResult:
    """Largest eigenvalue of each block by power iteration.

    ``v ← A v / ‖A v‖``, ``θ = vᵀ A v``; stops per sample when ``|θ_t − θ_{t−1}| ≤ tol · θ_t``.
    Converges at rate ``λ₂/λ₁``, so it can be slow when the top two eigenvalues are close;
    prefer :func:`lanczos`.

    Args:
        matvec: ``[B, d] -> [B, d]``, each row multiplied by its own symmetric PSD matrix.
        batch: ``B``.
        dim: ``d``.
        num_iter: maximum number of matvecs.
        tol: relative change tolerance.
        generator: random generator for the start vectors, or one per block.
        device: device of the vectors.

    Returns:
        An :class:`EigenResult` (``residual`` is ``‖A v − θ v‖``).
    """
    device = torch.device(device)
    v = _unit_start(batch, dim, generator, device)
    theta = torch.zeros(batch, dtype=torch.float64, device=device)
    residual = torch.full_like(theta, float("inf"))
    iterations = torch.full((batch,), num_iter, dtype=torch.long, device=device)
    converged = torch.zeros(batch, dtype=torch.bool, device=device)
    for step in range(num_iter):
        w = matvec(v).to(torch.float64)
        new_theta = (w * v).sum(-1)
        res = (w - new_theta[:, None] * v).norm(dim=-1)
        newly = ~converged & ((new_theta - theta).abs() <= tol * new_theta.abs())
        theta = torch.where(converged, theta, new_theta)
        residual = torch.where(converged, residual, res)
        iterations = torch.where(newly, torch.full_like(iterations, step + 1), iterations)
        converged = converged | newly
        if bool(converged.all()):
            break
        norm = w.norm(dim=-1, keepdim=True)
        v = torch.where(norm > 0, w / norm.clamp_min(1e-300), v)
    return EigenResult(theta.clamp_min(0.0), iterations, converged, residual)
