"""Analytic oracles: logistic models, where the input Fisher has a closed form."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from art_fim import (
    AutogradJacobian,
    exact_spectral_norm,
    exact_trace,
    fisher_spectral_norm,
    top_eigenvector,
)


def test_multinomial_logistic_fisher_is_wt_m_w():
    """For z = W x + b, J = W and F = Wᵀ (diag p − ppᵀ) W exactly."""
    generator = torch.Generator().manual_seed(0)
    w = torch.randn(5, 12, generator=generator, dtype=torch.float64)
    b = torch.randn(5, generator=generator, dtype=torch.float64)
    x = torch.randn(6, 12, generator=generator, dtype=torch.float64)
    jac = AutogradJacobian(lambda t: t @ w.T + b, x)
    p = torch.softmax(x @ w.T + b, -1)
    fisher = w.T @ (torch.diag_embed(p) - p[:, :, None] * p[:, None, :]) @ w
    torch.testing.assert_close(exact_spectral_norm(jac), torch.linalg.eigvalsh(fisher)[:, -1],
                               rtol=1e-10, atol=0)
    torch.testing.assert_close(exact_trace(jac), torch.diagonal(fisher, dim1=1, dim2=2).sum(-1),
                               rtol=1e-10, atol=0)


def test_binary_logistic_fisher_closed_form():
    """p(y=1|x) = σ(wᵀx + b) gives λ_max = tr F = q(1 − q)‖w‖², eigenvector ± w/‖w‖."""
    generator = torch.Generator().manual_seed(1)
    w = torch.randn(20, generator=generator, dtype=torch.float64)
    x = torch.randn(8, 20, generator=generator, dtype=torch.float64)
    b = 0.3
    # A two-class softmax with logits (0, wᵀx + b) is exactly the logistic model.
    model = nn.Linear(20, 2).double().eval()
    with torch.no_grad():
        model.weight.copy_(torch.stack([torch.zeros(20, dtype=torch.float64), w]))
        model.bias.copy_(torch.tensor([0.0, b], dtype=torch.float64))
    q = torch.sigmoid(x @ w + b)
    expected = q * (1 - q) * w.dot(w)
    jac = AutogradJacobian(model, x)
    torch.testing.assert_close(exact_spectral_norm(jac), expected, rtol=1e-10, atol=0)
    torch.testing.assert_close(exact_trace(jac), expected, rtol=1e-10, atol=0)
    _, v = top_eigenvector(jac)
    torch.testing.assert_close((v @ w).abs() / w.norm(), torch.ones(8, dtype=torch.float64),
                               rtol=1e-10, atol=0)
    # Through the public API too (model as a bare module, NumPy in and out).
    values = fisher_spectral_norm(model, x.numpy(), verbose=False)
    np.testing.assert_allclose(values, expected.numpy(), rtol=1e-10)


def test_kl_growth_along_top_eigenvector():
    """KL(p(x) ‖ p(x + r v)) / (½ r² λ_max) → 1 as r → 0 along the top eigenvector."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 4)).double().eval()
    x = torch.randn(1, 10, dtype=torch.float64)
    lam, v = top_eigenvector(AutogradJacobian(model, x))
    ratios = []
    for r in (1e-2, 1e-3):
        with torch.no_grad():
            log_p = torch.log_softmax(model(x), -1)
            log_q = torch.log_softmax(model(x + r * v), -1)
        kl = (log_p.exp() * (log_p - log_q)).sum()
        ratios.append(float(kl / (0.5 * r**2 * lam[0])))
    assert abs(ratios[-1] - 1) < 1e-2
    assert abs(ratios[-1] - 1) < abs(ratios[0] - 1) + 1e-12
