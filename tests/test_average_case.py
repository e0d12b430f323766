"""Average-case robustness against exact oracles.

Linear models are exact: their margins are linear, so the linearised (Taylor) probability is the
true one. With equicorrelated margin gradients it reduces to a one-dimensional integral,
computed here by quadrature, independently of the multivariate-normal integrator. Nonlinear
models are checked against a dense ``torch.func`` Jacobian, and Monte Carlo against the exact
value through its confidence interval.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.special import ndtr
from scipy.stats import binomtest, norm
from torch import nn

from art_fim import AverageCaseRobustness, NotDifferentiableError, average_case_robustness
from art_fim.adapters import adapter_for
from art_fim.average_case import smoothed_margins, taylor_margins
from art_fim.binomial import clopper_pearson_interval, wilson_interval
from art_fim.gaussian_margins import (
    bracketing_bounds,
    mv_sigmoid,
    orthant_probability,
    scaled_margins,
)
from art_fim.noise import noisy_copies
from cases import make_inputs, make_model

# The integrator's error target is 1e-4 (three standard errors); the oracles are exact to ~1e-10.
MVN_ATOL = 1e-4


def linear_model(weight: np.ndarray, bias: np.ndarray) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0]).double().eval()
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(weight))
        layer.bias.copy_(torch.from_numpy(bias))
    return layer


def random_linear(d: int = 20, k: int = 10, seed: int = 0) -> nn.Linear:
    rng = np.random.default_rng(seed)
    return linear_model(rng.normal(size=(k, d)), rng.normal(size=k))


def estimate(model, x, sigma, method, **kwargs):
    return AverageCaseRobustness(model, sigma, method=method, verbose=False, **kwargs).estimate(x)


def test_taylor_is_the_exact_probability_for_binary_linear_models():
    """``p_σ(x) = Φ(|wᵀx + b| / (σ‖w‖))`` with ``w = w₁ − w₀``."""
    rng = np.random.default_rng(3)
    weight, bias = rng.normal(size=(2, 15)), rng.normal(size=2)
    x = rng.uniform(size=(8, 15))
    sigma = 0.7
    w, b = weight[1] - weight[0], bias[1] - bias[0]
    expected = ndtr(np.abs(x @ w + b) / (sigma * np.linalg.norm(w)))
    result = estimate(linear_model(weight, bias), x, sigma, "taylor")
    np.testing.assert_allclose(result.values, expected, atol=1e-12)
    assert np.ptp(expected) > 0.2 and expected.max() < 0.99  # informative values, not all ~1


def equicorrelated_model(rho: float, scales: np.ndarray, offsets: np.ndarray) -> nn.Linear:
    """Class 0 wins; ``∇g_i = c_i (√ρ e_0 + √(1−ρ) e_i)``, so the margin gradients are
    equicorrelated.
    """
    k = len(scales) + 1
    weight = np.zeros((k, k))
    for i, c in enumerate(scales, start=1):
        weight[i, 0] = -c * np.sqrt(rho)
        weight[i, i] = -c * np.sqrt(1 - rho)
    return linear_model(weight, np.concatenate([[0.0], -offsets]))


def equicorrelated_orthant(z: np.ndarray, rho: float) -> float:
    """``P[s ≤ z]`` for unit-variance ``s`` with pairwise correlation ``ρ``, by quadrature.

    ``s_i = √ρ T + √(1−ρ) E_i``, so ``P = ∫ φ(t) Π_i Φ((z_i − √ρ t)/√(1−ρ)) dt``.
    """
    def integrand(t: float) -> float:
        return norm.pdf(t) * np.prod(ndtr((z - np.sqrt(rho) * t) / np.sqrt(1 - rho)))

    value, _ = integrate.quad(integrand, -12, 12, epsabs=1e-13, epsrel=1e-12, limit=200)
    return value


@pytest.mark.parametrize("rho", [0.2, 0.7])
def test_taylor_matches_the_exact_equicorrelated_probability_with_ten_classes(rho):
    rng = np.random.default_rng(5)
    scales, offsets = rng.uniform(0.5, 2.0, size=9), rng.uniform(0.2, 1.0, size=9)
    model = equicorrelated_model(rho, scales, offsets)
    x = rng.uniform(size=(4, 10))
    sigma = 0.6
    result = estimate(model, x, sigma, "taylor")
    assert (result.predicted == 0).all()
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).numpy()
    for i in range(len(x)):
        z = (logits[i, 0] - logits[i, 1:]) / (sigma * scales)
        assert result.values[i] == pytest.approx(equicorrelated_orthant(z, rho), abs=MVN_ATOL)
    assert 0.05 < result.values.min() and result.values.max() < 0.95


@pytest.mark.parametrize("interval", ["wilson", "clopper-pearson"])
def test_monte_carlo_interval_contains_the_exact_linear_probability(interval):
    """For a linear model Taylor is exact; 10,000 samples must bracket it at 99.9% confidence."""
    model = random_linear()
    x = make_inputs(batch=6, seed=2).reshape(6, -1)[:, :20].numpy()
    sigma = 0.15
    exact = estimate(model, x, sigma, "taylor").values
    mc = estimate(model, x, sigma, "mc", interval=interval, confidence=0.999)
    assert mc.num_samples == 10_000
    assert ((mc.lower <= exact) & (exact <= mc.upper)).all(), (mc.lower, exact, mc.upper)
    np.testing.assert_array_equal(mc.predicted, estimate(model, x, sigma, "taylor").predicted)
    assert np.ptp(exact) > 0.2  # a range of probabilities, not all at 1


def test_bracketing_bounds_contain_the_multivariate_normal_value():
    rng = np.random.default_rng(11)
    for dim in (2, 3, 5, 9, 15):
        for _ in range(6):
            factor = (
                rng.normal(size=(dim, dim + 2)) + rng.uniform(0, 2) * rng.normal(size=(1, dim + 2))
            )
            cov = factor @ factor.T
            scale = np.sqrt(np.diag(cov))
            corr = cov / np.outer(scale, scale)
            z = rng.uniform(-0.5, 3.0, size=dim)
            value, truncation = orthant_probability(z[None], corr[None])
            lower, upper = bracketing_bounds(z[None])
            assert lower[0] - MVN_ATOL <= value[0] <= upper[0] + MVN_ATOL
            assert truncation[0] == 0.0


def test_estimates_report_bounds_that_contain_them():
    model = random_linear(seed=4)
    x = make_inputs(batch=5, seed=3).reshape(5, -1)[:, :20].numpy()
    for method in ("taylor", "mmse"):
        result = estimate(model, x, 0.2, method)
        assert (result.lower - MVN_ATOL <= result.values).all() and (result.values <= result.upper
                                                                     + MVN_ATOL).all()


def test_independent_margins_and_the_sigmoid_closed_form():
    """Identity correlation: the orthant probability is ``Π Φ(z_i)``; the sigmoid is ``1/(1 + Σ
    e^{−z})``.
    """
    z = np.array([[2.0, 2.5, 3.0, 3.0]])
    value, _ = orthant_probability(z, np.eye(4)[None])
    assert value[0] == pytest.approx(np.prod(ndtr(z)), abs=MVN_ATOL)
    assert value[0] == pytest.approx(0.9686, abs=1e-4)
    assert mv_sigmoid(z)[0] == pytest.approx(1 / (1 + np.exp(-z).sum()), rel=1e-15)
    assert mv_sigmoid(z)[0] == pytest.approx(0.7594, abs=1e-4)


def test_nearest_competitors_bound_the_full_probability():
    model = random_linear(seed=6)
    x = make_inputs(batch=5, seed=4).reshape(5, -1)[:, :20].numpy()
    full = estimate(model, x, 0.2, "taylor")
    kept = estimate(model, x, 0.2, "taylor", competitors=3)
    assert (kept.values >= full.values - MVN_ATOL).all()
    assert (kept.values - kept.truncation_error <= full.values + MVN_ATOL).all()
    assert (kept.truncation_error > 0).any()
    everyone = estimate(model, x, 0.2, "taylor", competitors=9)
    np.testing.assert_array_equal(everyone.values, full.values)


def dense_margins(
    forward, x: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Margins ``z_t − z_i`` and their gradients ``[B, K−1, d]`` by ``torch.func.jacrev``."""
    margins, grads = [], []
    for sample, t in zip(x, target):
        logits = forward(sample[None])[0].detach()
        jac = (
            torch.func.jacrev(lambda s: forward(s[None])[0])(sample)
            .detach()
            .reshape(logits.shape[0], -1)
        )
        others = [i for i in range(logits.shape[0]) if i != int(t)]
        margins.append(logits[t] - logits[others])
        grads.append(jac[t][None] - jac[others])
    return torch.stack(margins), torch.stack(grads)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_taylor_margins_match_a_dense_jacobian(name):
    model = make_model(name)
    x = make_inputs(batch=3)
    sigma = 0.05
    z, corr, target = taylor_margins(adapter_for(model).jacobian(x.numpy()), sigma)
    margins, grads = dense_margins(model, x, target)
    z_ref, corr_ref = scaled_margins(margins, grads @ grads.transpose(1, 2), sigma)
    np.testing.assert_allclose(z.numpy(), z_ref.numpy(), rtol=1e-9)
    np.testing.assert_allclose(corr.numpy(), corr_ref.numpy(), atol=1e-10)


def test_mmse_averages_margins_and_gradients_over_the_noisy_copies():
    model = make_model("mlp")
    x = make_inputs(batch=3)
    target = model(x).argmax(1)
    sigma, copies = 0.1, 4
    margins, gram = smoothed_margins(
        adapter_for(model), x, target, sigma, copies, torch.Generator().manual_seed(9)
    )
    noisy = noisy_copies(x, sigma, copies, torch.Generator().manual_seed(9))
    ref_margins, ref_grads = dense_margins(model, noisy, target.repeat_interleave(copies))
    ref_margins = ref_margins.reshape(3, copies, -1).mean(1)
    ref_grads = ref_grads.reshape(3, copies, *ref_grads.shape[1:]).mean(1)
    np.testing.assert_allclose(margins.numpy(), ref_margins.numpy(), rtol=1e-10)
    np.testing.assert_allclose(gram.numpy(), (ref_grads @ ref_grads.transpose(1, 2)).numpy(),
                               rtol=1e-9)


def test_mmse_of_a_linear_model_keeps_the_gradients_and_perturbs_the_margins_by_the_mean_noise():
    """Linear ``g``: ``∇ĝ = ∇g`` exactly and ``ĝ − g = ∇gᵀ ε̄ ∼ N(0, σ²‖∇g‖²/N)``."""
    model = random_linear(seed=8)
    x = torch.from_numpy(make_inputs(batch=4, seed=5).reshape(4, -1)[:, :20].numpy())
    sigma, copies = 0.3, 10
    jac = adapter_for(model).jacobian(x.numpy())
    z, corr, target = taylor_margins(jac, sigma)
    margins, gram = smoothed_margins(adapter_for(model), x, target, sigma, copies,
                                     torch.Generator().manual_seed(1))
    z_mmse, corr_mmse = scaled_margins(margins, gram, sigma)
    np.testing.assert_allclose(corr_mmse.numpy(), corr.numpy(), atol=1e-12)
    # (ẑ − z) = ∇gᵀε̄ / (σ‖∇g‖) ∼ N(0, 1/N): within 5 standard deviations.
    assert np.abs((z_mmse - z).numpy()).max() < 5 / np.sqrt(copies)


def test_art_classifier_with_preprocessing_equals_the_normalised_module():
    from art.estimators.classification import PyTorchClassifier

    torch.manual_seed(0)
    core = make_model("cnn").float()
    mean, std = np.array([0.4, 0.5, 0.6]), np.array([0.2, 0.25, 0.3])

    class Normalised(nn.Module):
        def forward(self, t):
            shift = torch.tensor(mean, dtype=t.dtype).reshape(1, 3, 1, 1)
            scale = torch.tensor(std, dtype=t.dtype).reshape(1, 3, 1, 1)
            return core((t - shift) / scale)

    classifier = PyTorchClassifier(
        core, loss=nn.CrossEntropyLoss(), input_shape=(3, 8, 8), nb_classes=10,
        clip_values=(0.0, 1.0), preprocessing=(mean, std),
    )
    x = make_inputs(batch=4).float().numpy()
    for method in ("taylor", "mmse", "mc"):
        kwargs = {"num_samples": 300} if method == "mc" else {}
        art = average_case_robustness(classifier, x, 0.05, method=method, verbose=False, **kwargs)
        bare = average_case_robustness(Normalised().eval(), x, 0.05, method=method, verbose=False,
                                       **kwargs)
        np.testing.assert_allclose(art, bare, atol=1e-5)


def test_monte_carlo_needs_only_predictions():
    """A query-only ``BlackBoxClassifier`` gets the same Monte Carlo value (same noise, model)."""
    from art.estimators.classification import BlackBoxClassifier

    model = make_model("mlp").float()
    x = make_inputs(batch=3).float().numpy()

    def predict(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(batch)).numpy()

    black_box = BlackBoxClassifier(predict, input_shape=(3, 8, 8), nb_classes=10,
                                   clip_values=(0.0, 1.0))
    kwargs = {"method": "mc", "num_samples": 500, "verbose": False}
    np.testing.assert_array_equal(
        average_case_robustness(black_box, x, 0.1, **kwargs),
        average_case_robustness(model, x, 0.1, **kwargs)
    )
    with pytest.raises(NotDifferentiableError):
        average_case_robustness(black_box, x, 0.1, method="taylor", verbose=False)


def test_probability_outputs_give_the_same_linearisation_as_logits():
    """Margins of log-probabilities equal logit margins, so every estimator agrees."""
    model = make_model("mlp")
    softmax_model = nn.Sequential(model, nn.Softmax(dim=-1)).eval()
    x = make_inputs(batch=3).numpy()
    for method in ("taylor", "taylor_mvs"):
        np.testing.assert_allclose(
            average_case_robustness(softmax_model, x, 0.05, method=method, verbose=False),
            average_case_robustness(model, x, 0.05, method=method, verbose=False),
            atol=1e-8,
        )


def test_results_do_not_depend_on_the_batch_size():
    model = random_linear(seed=2)
    x = make_inputs(batch=5, seed=6).reshape(5, -1)[:, :20].numpy()
    one = estimate(model, x, 0.2, "taylor", batch_size=1)
    all_at_once = estimate(model, x, 0.2, "taylor", batch_size=5)
    np.testing.assert_allclose(one.values, all_at_once.values, rtol=1e-12)


@pytest.mark.parametrize("k", [0, 3, 10_000])
def test_binomial_intervals_match_scipy(k):
    n = 10_000
    low, high = wilson_interval(k, n, 0.95)
    ref = binomtest(k, n).proportion_ci(0.95, method="wilson")
    assert (low, high) == pytest.approx((ref.low, ref.high), abs=1e-12)
    low, high = clopper_pearson_interval(k, n, 0.95)
    ref = binomtest(k, n).proportion_ci(0.95, method="exact")
    assert (low, high) == pytest.approx((ref.low, ref.high), abs=1e-10)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sigma": 0.0}, ValueError, "sigma must be positive"),
        ({"sigma": float("nan")}, ValueError, "sigma must be positive"),
        ({"sigma": "0.1"}, TypeError, "sigma must be a positive number"),
        ({"sigma": 0.1, "method": "exact"}, ValueError, "method must be one of"),
        ({"sigma": 0.1, "method": "mc", "num_samples": 1}, ValueError, "at least 2"),
        ({"sigma": 0.1, "interval": "wald"}, ValueError, "interval must be"),
        ({"sigma": 0.1, "confidence": 1.0}, ValueError, "confidence must lie"),
        ({"sigma": 0.1, "competitors": 0}, ValueError,
         "competitors must be a positive integer"),
    ],
)
def test_bad_parameters_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        AverageCaseRobustness(make_model("mlp"), **kwargs)


def test_bad_inputs_are_refused():
    from art.estimators.classification import PyTorchClassifier

    model = make_model("mlp")
    classifier = PyTorchClassifier(
        model.float(), loss=nn.CrossEntropyLoss(), input_shape=(3, 8, 8), nb_classes=10,
        clip_values=(0.0, 1.0)
    )
    x = make_inputs(batch=2).float().numpy()
    with pytest.raises(ValueError, match="outside the classifier's clip_values"):
        average_case_robustness(classifier, x * 255, 0.1, verbose=False)
    with pytest.raises(ValueError, match="NaN or inf"):
        average_case_robustness(classifier, np.full_like(x, np.nan), 0.1, verbose=False)
    with pytest.raises(ValueError, match="training mode"):
        average_case_robustness(make_model("mlp").train(), x, 0.1, verbose=False)
