"""The Fisher metric's links to random noise and to the ℓ∞ box, against exact values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.special import expit
from torch import nn

from art_fim import expected_noise_kl, fisher_linf_bounds, fisher_trace
from cases import make_inputs, make_model


@pytest.mark.parametrize("sigma", [1e-2, 1e-3])
def test_expected_kl_under_small_noise_is_half_sigma_squared_trace(sigma):
    """``E_ε KL(p(x) ‖ p(x+ε)) = ½σ² tr F(x) + O(σ⁴)`` for ``ε ∼ N(0, σ²I)``.

    Tolerance: 4 Monte Carlo standard errors (4,000 draws; KL ≈ ½εᵀFε is a weighted χ², whose
    relative standard deviation is at most √2, so 4 SE ≤ 9% of the value) plus 2% of the value
    for the O(σ²) relative bias, far below that at these σ.
    """
    model = make_model("mlp")
    x = make_inputs(batch=4).numpy()
    result = expected_noise_kl(model, x, sigma, num_samples=4000, seed=1)
    np.testing.assert_allclose(result.fisher_prediction,
                               0.5 * sigma**2 * fisher_trace(model, x, verbose=False))
    error = np.abs(result.mean - result.fisher_prediction)
    assert (error <= 4 * result.stderr + 0.02 * result.fisher_prediction).all(), (
        result.mean,
        result.fisher_prediction,
    )
    assert (
        result.stderr < 0.05 * result.mean
    ).all()  # the comparison is sharp, not swamped by noise


def test_expected_kl_departs_from_the_fisher_prediction_at_large_noise():
    """The link is second order: at σ = 1 the KL is no longer ½σ² tr F (a check that the test can
    fail).
    """
    model = make_model("mlp")
    x = make_inputs(batch=2).numpy()
    result = expected_noise_kl(model, x, 1.0, num_samples=2000)
    assert (np.abs(result.mean - result.fisher_prediction) > 10 * result.stderr).all()


def test_linf_fisher_of_a_logistic_model_is_q_one_minus_q_times_the_l1_norm_squared():
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=12), 0.3
    layer = nn.Linear(12, 2).double().eval()
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(np.stack([-w / 2, w / 2])))
        layer.bias.copy_(torch.tensor([-b / 2, b / 2], dtype=torch.float64))
    x = rng.normal(size=(5, 12))
    q = expit(x @ w + b)
    lower, upper = fisher_linf_bounds(layer, x)
    np.testing.assert_allclose(lower, q * (1 - q) * np.abs(w).sum() ** 2, rtol=1e-10)
    np.testing.assert_allclose(upper, lower, rtol=1e-10)


def test_linf_fisher_bounds_bracket_the_brute_force_maximum():
    """For d = 6 the box maximum of the convex ``uᵀFu`` is the best of the 64 vertices."""
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 4)).double().eval()
    x = torch.rand(3, 6, dtype=torch.float64)
    fisher = dense_fisher_flat(model, x)
    vertices = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=6)), dtype=torch.float64)
    brute = torch.einsum("vi,bij,vj->bv", vertices, fisher, vertices).max(1).values.numpy()
    lower, upper = fisher_linf_bounds(model, x.numpy())
    assert (lower <= brute * (1 + 1e-10)).all() and (brute <= upper * (1 + 1e-10)).all()
    assert (upper > lower * (1 + 1e-6)).all()  # rank > 1: the bounds differ


def dense_fisher_flat(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``Jᵀ(diag p − ppᵀ)J`` per sample for a model on flat inputs."""
    out = []
    for sample in x:
        jac = torch.func.jacrev(lambda s: model(s[None])[0])(sample).detach()
        p = torch.softmax(model(sample[None])[0], -1).detach()
        out.append(jac.T @ (torch.diag(p) - torch.outer(p, p)) @ jac)
    return torch.stack(out)

