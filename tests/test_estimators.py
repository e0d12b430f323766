"""Exact, Lanczos, power-iteration and Hutchinson estimators against a dense reference."""

from __future__ import annotations

import pytest
import torch

from art_fim import (
    AutogradJacobian,
    DenseJacobian,
    exact_spectral_norm,
    exact_trace,
    hutchinson_trace,
    lanczos,
    power_iteration,
    top_eigenvector,
)
from cases import dense_fisher


def _dense_reference(model, x):
    fisher = dense_fisher(model, x)
    eigenvalues = torch.linalg.eigvalsh(fisher)
    return fisher, eigenvalues[:, -1], torch.diagonal(fisher, dim1=1, dim2=2).sum(-1)


def test_exact_matches_dense_reference(model, inputs):
    """λ_max and trace from the K×K route equal eigvalsh(JᵀMJ) on the d×d matrix (d = 192)."""
    _, lam_ref, trace_ref = _dense_reference(model, inputs)
    jac = AutogradJacobian(model, inputs)
    torch.testing.assert_close(exact_spectral_norm(jac), lam_ref, rtol=1e-6, atol=0)
    torch.testing.assert_close(exact_trace(jac), trace_ref, rtol=1e-6, atol=0)


def test_exact_matches_dense_reference_at_cifar_size():
    """The same identity at d = 3072 (a 3×32×32 input), the size the issue names."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 5, stride=2), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(4 * 14 * 14, 10),
    ).double().eval()
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    fisher = []
    for sample in x:
        jac = torch.func.jacrev(lambda t: model(t[None])[0])(sample).reshape(10, -1)
        p = torch.softmax(model(sample[None])[0], -1)
        fisher.append(jac.T @ (torch.diag(p) - torch.outer(p, p)) @ jac)
    fisher = torch.stack(fisher).detach()
    jac = AutogradJacobian(model, x)
    torch.testing.assert_close(exact_spectral_norm(jac), torch.linalg.eigvalsh(fisher)[:, -1],
                               rtol=1e-6, atol=0)
    torch.testing.assert_close(exact_trace(jac), torch.diagonal(fisher, dim1=1, dim2=2).sum(-1),
                               rtol=1e-6, atol=0)


def test_dense_jacobian_agrees_with_autograd(model, inputs):
    """The dense construction (ART class_gradient route) gives the same Gram and Fisher."""
    auto = AutogradJacobian(model, inputs)
    dense = DenseJacobian(auto.rows().reshape(4, 10, *inputs.shape[1:]), auto.logits)
    torch.testing.assert_close(dense.gram(), auto.gram(), rtol=1e-12, atol=1e-14)
    v = torch.randn(4, auto.input_dim, dtype=torch.float64)
    torch.testing.assert_close(dense.fisher_matvec(v), auto.fisher_matvec(v), rtol=1e-10,
                               atol=1e-12)


def test_jvp_and_vjp_are_adjoint(model, inputs):
    """⟨u, J v⟩ = ⟨Jᵀ u, v⟩ per sample: forward and reverse products describe one J."""
    jac = AutogradJacobian(model, inputs)
    generator = torch.Generator().manual_seed(3)
    v = torch.randn(4, jac.input_dim, generator=generator, dtype=torch.float64)
    u = torch.randn(4, jac.num_classes, generator=generator, dtype=torch.float64)
    torch.testing.assert_close((u * jac.jvp(v)).sum(-1), (jac.vjp(u) * v).sum(-1), rtol=1e-10,
                               atol=1e-12)


def test_top_eigenvector_is_an_eigenvector(model, inputs):
    """F v = λ_max v for the returned unit vector, checked on the dense matrix."""
    fisher, lam_ref, _ = _dense_reference(model, inputs)
    lam, v = top_eigenvector(AutogradJacobian(model, inputs))
    torch.testing.assert_close(v.norm(dim=-1), torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(torch.einsum("bij,bj->bi", fisher, v), lam[:, None] * v, rtol=1e-6,
                               atol=1e-9)
    torch.testing.assert_close(lam, lam_ref, rtol=1e-6, atol=0)


def test_spectrum_structure(model, inputs):
    """rank F ≤ K − 1 and tr F / (K − 1) ≤ λ_max ≤ tr F."""
    fisher, lam, trace = _dense_reference(model, inputs)
    eigenvalues = torch.linalg.eigvalsh(fisher)
    assert (eigenvalues[:, :-9].abs() <= 1e-10 * lam[:, None]).all()  # only K − 1 = 9 non-zero
    assert (trace / 9 <= lam * (1 + 1e-12)).all() and (lam <= trace * (1 + 1e-12)).all()


@pytest.mark.parametrize("solver", [lanczos, power_iteration], ids=["lanczos", "power"])
def test_matrix_free_solvers_match_exact(model, inputs, solver):
    """Lanczos and power iteration agree with the exact value within 1e-4 (relative)."""
    jac = AutogradJacobian(model, inputs)
    exact = exact_spectral_norm(jac)
    result = solver(
        jac.fisher_matvec, 4, jac.input_dim, num_iter=60 if solver is lanczos else 2000,
        tol=1e-10, generator=torch.Generator().manual_seed(0),
    )
    assert result.converged.all()
    torch.testing.assert_close(result.values, exact, rtol=1e-4, atol=0)


def test_lanczos_stops_within_rank_plus_one_steps(model, inputs):
    """The Krylov space of a rank-(K−1) operator is exhausted after at most K steps."""
    jac = AutogradJacobian(model, inputs)
    result = lanczos(jac.fisher_matvec, 4, jac.input_dim, num_iter=100, tol=1e-12,
                     generator=torch.Generator().manual_seed(0))
    assert (result.iterations <= jac.num_classes).all()
    torch.testing.assert_close(result.values, exact_spectral_norm(jac), rtol=1e-8, atol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("distribution", ["rademacher", "gaussian"])
def test_hutchinson_within_three_standard_errors(model, inputs, seed, distribution):
    """Hutchinson's mean lies within 3 standard errors of the exact trace (seeds 0, 1, 2).

    With 400 probes the estimator is close to normal, so each check fails with probability
    about 0.3%; the seeds are fixed, so the test is deterministic.
    """
    jac = AutogradJacobian(model, inputs)
    estimate, stderr, _ = hutchinson_trace(
        jac, 400, distribution=distribution, generator=torch.Generator().manual_seed(seed)
    )
    assert ((estimate - exact_trace(jac)).abs() <= 3 * stderr).all()
    assert (stderr > 0).all()
