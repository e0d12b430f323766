"""The Tsipras et al. distribution as an exact oracle: closed forms, ART attacks, Theorem 2.1."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, ndtr

from art_fim import average_case_robustness, fisher_linf_bounds, fisher_spectral_norm
from art_fim.tradeoff import (
    TsiprasDistribution,
    art_linear_classifier,
    class_indices,
    effective_weights,
    linear_module,
    train_linear_classifier,
)


def logistic_fisher(w: np.ndarray, b: float, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Input Fisher of the logistic model ``σ(y(wᵀx + b))``: ``F(x) = q(1−q) w wᵀ``.

    Rank one, so its ℓ2 spectral norm is ``q(1−q)‖w‖₂²`` and its ℓ∞ variant
    ``max_{‖u‖∞≤1} uᵀF u = q(1−q)‖w‖₁²`` (at ``u = sign(w)``).

    Returns:
        ``(λ_max [n], ℓ∞ variant [n])`` for the rows of ``x``.
    """
    w = np.asarray(w, dtype=np.float64)
    q = expit(np.asarray(x, dtype=np.float64) @ w + b)
    weight = q * (1 - q)
    return weight * np.dot(w, w), weight * np.abs(w).sum() ** 2


# Sampled accuracies are compared with the closed forms within this many binomial standard
# errors √(a(1−a)/n), plus 1e-4 for float32 rounding of margins that land exactly on zero.
SAMPLING_SE = 4.0


def within_sampling_error(empirical: float, exact: float, n: int) -> bool:
    return abs(empirical - exact) <= SAMPLING_SE * np.sqrt(exact * (1 - exact) / n) + 1e-4


def test_closed_forms_reproduce_the_paper_examples():
    """f_avg: Φ(η√d) standard, Φ(−η√d) at ε = 2η; f_rob: p at any ε < 1 (η = 3/√d)."""
    dist = TsiprasDistribution(p=0.95, d=100)
    w, b = dist.averaging_classifier()
    assert dist.accuracy(w, b) == pytest.approx(ndtr(3.0), abs=1e-12)
    assert dist.accuracy(w, b, dist.critical_eps) == pytest.approx(ndtr(-3.0), abs=1e-12)
    assert (
        dist.theorem_2_1_bound(dist.accuracy(w, b))
        == pytest.approx(19 * (1 - ndtr(3.0)), rel=1e-12)
    )
    w, b = dist.robust_feature_classifier()
    for eps in (0.0, dist.critical_eps, 0.99):
        assert dist.accuracy(w, b, eps) == pytest.approx(0.95, abs=1e-15)
    # At ε = 1 the adversary zeroes x₁: a tie counts as an error.
    assert dist.accuracy(w, b, 1.0) == 0.0


@pytest.mark.parametrize(("d", "robust"), [(100, 0.002404), (10_000, 0.005296)])
def test_bayes_classifier_matches_the_oracle_table(d, robust):
    dist = TsiprasDistribution(p=0.95, d=d)
    w, b = dist.bayes_classifier()
    assert dist.accuracy(w, b) == pytest.approx(0.999469, abs=1e-6)
    assert dist.accuracy(w, b, dist.critical_eps) == pytest.approx(robust, abs=1e-6)


def test_samples_follow_the_distribution():
    dist = TsiprasDistribution(p=0.9, d=30, eta=0.4)
    x, y = dist.sample(200_000, seed=3)
    assert x.shape == (200_000, 31) and set(np.unique(y)) == {-1, 1}
    agrees = (x[:, 0] == y).mean()
    assert within_sampling_error(agrees, 0.9, len(y))
    assert abs((x[:, 1:] * y[:, None]).mean() - 0.4) < 4 / np.sqrt(x[:, 1:].size)
    w, b = dist.bayes_classifier()
    assert within_sampling_error((np.sign(x @ w + b) == y).mean(), dist.accuracy(w, b), len(y))


@pytest.mark.parametrize("norm", [np.inf, 2])
@pytest.mark.parametrize("attack_name", ["fgsm", "pgd"])
def test_closed_form_robust_accuracy_matches_art_attacks(norm, attack_name):
    """ART's FGSM/PGD reach the exact worst case of a linear model: x − ε y sign(w) (ℓ∞), x − ε y
    w/‖w‖ (ℓ2).

    Per point, the attack succeeds exactly where the closed-form margin ``y(wᵀx+b) − ε‖w‖_*`` is
    not positive (up to float32 rounding near zero); over n = 20,000 samples the robust accuracy
    is within 4 binomial standard errors of the population value.
    """
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent

    dist = TsiprasDistribution(p=0.9, d=50)
    w, b = dist.bayes_classifier()
    classifier = art_linear_classifier(linear_module(dist.input_dim, w, b))
    x, y = dist.sample(20_000, seed=4)
    dual = np.abs(w).sum() if norm == np.inf else np.linalg.norm(w)
    for eps in (dist.eta / 2, dist.critical_eps):
        if attack_name == "fgsm":
            attack = FastGradientMethod(classifier, norm=norm, eps=eps, batch_size=5000)
        else:
            attack = ProjectedGradientDescent(
                classifier, norm=norm, eps=eps, eps_step=eps / 4, max_iter=8, num_random_init=0,
                batch_size=5000, verbose=False,
            )
        x_adv = attack.generate(x, class_indices(y))
        correct = classifier.predict(x_adv).argmax(1) == class_indices(y)
        margin = y * (x.astype(np.float64) @ w + b) - eps * dual
        clear = np.abs(margin) > 1e-3
        np.testing.assert_array_equal(correct[clear], margin[clear] > 0)
        assert within_sampling_error(correct.mean(), dist.accuracy(w, b, eps, norm), len(y))


@pytest.fixture(scope="module")
def trained():
    """A standard and an ℓ∞ PGD-trained linear model (ART), on a small instance of the distribution.

    ``ε = 2η = 0.6`` stays below ``2p − 1 = 0.8``, where adversarial training still keeps ``x₁``.
    """
    dist = TsiprasDistribution(p=0.9, d=20, eta=0.3)
    x, y = dist.sample(2000, seed=0)
    kwargs = {"epochs": 5, "batch_size": 200, "learning_rate": 0.1, "pgd_steps": 4}
    standard = train_linear_classifier(x, y, **kwargs)
    robust = train_linear_classifier(x, y, adversarial_eps=dist.critical_eps, **kwargs)
    return dist, standard, robust


def test_theorem_2_1_holds_for_the_trained_models(trained):
    """Robust accuracy at ε = 2η ≤ p/(1−p) · (1 − standard accuracy), exactly and on samples."""
    from art.attacks.evasion import ProjectedGradientDescent

    dist, standard, robust = trained
    x, y = dist.sample(20_000, seed=7)
    accuracies = {}
    for name, classifier in (("standard", standard), ("robust", robust)):
        w, b = effective_weights(classifier.model)
        clean, attacked = dist.accuracy(w, b), dist.accuracy(w, b, dist.critical_eps)
        assert attacked <= dist.theorem_2_1_bound(clean) + 1e-12
        x_adv = ProjectedGradientDescent(
            classifier, norm=np.inf, eps=dist.critical_eps, eps_step=dist.critical_eps / 4,
            max_iter=8,
            num_random_init=0, verbose=False,
        ).generate(x, class_indices(y))
        sampled = (classifier.predict(x_adv).argmax(1) == class_indices(y)).mean()
        assert within_sampling_error(sampled, attacked, len(y))
        accuracies[name] = (clean, attacked)
    # The trade-off itself: adversarial training gives up accuracy for robustness.
    assert accuracies["standard"][0] > accuracies["robust"][0] + 0.03
    assert accuracies["robust"][1] > accuracies["standard"][1] + 0.3


def test_art_fim_metrics_of_a_logistic_model_match_the_closed_forms():
    """λ_max F = q(1−q)‖w‖², the ℓ∞ variant q(1−q)‖w‖₁², and p_σ = Φ(|wᵀx+b|/(σ‖w‖))."""
    dist = TsiprasDistribution(p=0.95, d=30)
    w, b = dist.bayes_classifier()
    classifier = art_linear_classifier(linear_module(dist.input_dim, w, b))
    x, _ = dist.sample(50, seed=2)
    spectral, linf = logistic_fisher(w, b, x)
    # Float64 softmax holds 1 − q to ~1e-16 absolute: an absolute error of ~1e-16 · ‖w‖² in the
    # Fisher of the most confident points (1 − q ≈ 1e-12), relative 1e-4 elsewhere (float32 model).
    atol = 1e-15 * np.abs(w).sum() ** 2
    np.testing.assert_allclose(fisher_spectral_norm(classifier, x, verbose=False), spectral,
                               rtol=1e-4, atol=atol)
    lower, upper = fisher_linf_bounds(classifier, x)
    np.testing.assert_allclose(lower, linf, rtol=1e-4, atol=atol)
    np.testing.assert_allclose(upper, linf, rtol=1e-4, atol=atol)
    sigma = 1.0
    expected = ndtr(np.abs(x.astype(np.float64) @ w + b) / (sigma * np.linalg.norm(w)))
    taylor = average_case_robustness(classifier, x, sigma, method="taylor", verbose=False)
    np.testing.assert_allclose(taylor, expected, atol=1e-5)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="p must lie"):
        TsiprasDistribution(p=0.4, d=10)
    with pytest.raises(ValueError, match="d must be a positive integer"):
        TsiprasDistribution(p=0.9, d=0)
    dist = TsiprasDistribution(p=0.9, d=10)
    with pytest.raises(ValueError, match="w must have shape"):
        dist.accuracy(np.ones(10))
    with pytest.raises(ValueError, match="norm must be"):
        dist.accuracy(np.ones(11), norm=1)
