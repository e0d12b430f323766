"""First-order robust radius and predicted robust accuracy: analytic oracles and invariances.

Oracles: for a multinomial linear model the decision region of class y is a polytope, and the
distance from an interior point to its complement in norm q is the smallest of the distances
to the competitors' half-spaces. Each of those is computed here independently of the library:
a linear program (scipy's HiGHS) for ℓ1 and ℓ∞, a quadratic program (SLSQP) for ℓ2, and the
minimiser is checked to lie on the boundary.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from art.estimators.classification import PyTorchClassifier
from scipy.optimize import linprog, minimize
from torch import nn

from art_fim import (
    AutogradJacobian,
    fisher_spectral_norm,
    fisher_statistics,
    fisher_trace,
    predicted_robust_accuracy,
    robust_radius,
    top_eigenvector,
)
from art_fim.checks import check_labels
from art_fim.margins import boundary_point, margin_dual_norms, margins
from art_fim.norms import parse_norm
from cases import IMAGE_SHAPE, NUM_CLASSES, make_inputs, make_model


@contextlib.contextmanager
def counting_rows() -> Iterator[list[int]]:
    """Record the batch size of every ``AutogradJacobian.rows`` call made inside the block."""
    calls: list[int] = []
    rows = AutogradJacobian.rows

    def counted(self):
        calls.append(self.batch_size)
        return rows(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(AutogradJacobian, "rows", counted)
        yield calls


NORMS = [np.inf, 2, 1]
NORM_IDS = [f"norm={n}" for n in ("inf", "2", "1")]


def _linear_model(dim: int = 6, classes: int = 4, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Linear(dim, classes).double().eval()


def _halfspace_distance(a: np.ndarray, margin: float, norm: float) -> float:
    """min ‖δ‖_q subject to a·δ ≤ −margin, solved as an optimisation problem."""
    dim = len(a)
    if norm == math.inf:  # variables (δ, t): min t, −t ≤ δ_i ≤ t
        c = np.r_[np.zeros(dim), 1.0]
        rows = [np.r_[a, 0.0]]
        rows += [np.r_[np.eye(dim)[i], -1.0] for i in range(dim)]
        rows += [np.r_[-np.eye(dim)[i], -1.0] for i in range(dim)]
        res = linprog(c, A_ub=np.array(rows), b_ub=np.r_[-margin, np.zeros(2 * dim)],
                      bounds=[(None, None)] * (dim + 1), method="highs")
        return float(res.fun)
    if norm == 1.0:  # δ = δ⁺ − δ⁻, δ± ≥ 0: min Σ δ⁺ + δ⁻
        res = linprog(np.ones(2 * dim), A_ub=np.r_[a, -a][None], b_ub=[-margin],
                      bounds=[(0, None)] * (2 * dim),
                      method="highs")
        return float(res.fun)
    res = minimize(lambda d: d @ d, np.zeros(dim), jac=lambda d: 2 * d, method="SLSQP",
                   constraints=[{"type": "ineq", "fun": lambda d: -margin - a @ d,
                                 "jac": lambda d: -a}],
                   options={"ftol": 1e-16, "maxiter": 500})
    assert abs(a @ res.x + margin) <= 1e-9 * max(1.0, margin)  # the minimiser is on the boundary
    return float(np.sqrt(res.x @ res.x))


def _polytope_distance(w: np.ndarray, b: np.ndarray, x: np.ndarray, label: int,
                       norm: float) -> float:
    """Distance from x to the complement of class ``label``'s decision region of z = W x + b."""
    z = w @ x + b
    return min(
        _halfspace_distance(w[label] - w[j], z[label] - z[j], norm) for j in range(len(b))
        if j != label
    )


@pytest.mark.parametrize("norm", NORMS, ids=NORM_IDS)
def test_linear_model_radius_is_the_exact_distance_to_the_boundary(norm):
    """z = W x + b, no box: the radius equals the LP/QP distance to the decision region's boundary
    (1e-6).
    """
    model = _linear_model()
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64).numpy()
    w, b = model.weight.detach().numpy(), model.bias.detach().numpy()
    y = (w @ x.T + b[:, None]).argmax(0)
    radius = robust_radius(model, x, y, norm=norm, verbose=False)
    expected = np.array([_polytope_distance(w, b, xi, yi, parse_norm(norm))
                         for xi, yi in zip(x, y)])
    np.testing.assert_allclose(radius, expected, rtol=1e-6)
    # Just inside the radius the prediction holds, just beyond it the boundary point flips it.
    rows = torch.from_numpy(np.broadcast_to(w, (8, *w.shape)).copy())
    logits, labels = torch.from_numpy(x @ w.T + b), torch.from_numpy(y)
    margin = margins(logits, labels)
    dual = margin_dual_norms(rows, labels, parse_norm(norm))
    point = boundary_point(torch.from_numpy(x), rows, labels, margin, dual,
                           parse_norm(norm)).numpy()
    for scale, same in ((1 - 1e-6, True), (1 + 1e-6, False)):
        moved = x + scale * (point - x)
        assert np.all(((moved @ w.T + b).argmax(1) == y) == same)


@pytest.mark.parametrize("norm", NORMS, ids=NORM_IDS)
def test_radius_in_the_classifier_input_scale(norm):
    """A PyTorchClassifier normalising in ``preprocessing`` is linear in its [0, 1] input too: the
    radius is the distance in that scale, with W/σ the effective weights (1e-6).
    """
    dim, classes = 12, 5
    model = _linear_model(dim, classes, seed=3)
    mean, std = np.full(dim, 0.4), np.linspace(0.2, 0.3, dim)
    classifier = PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=(dim,),
                                   nb_classes=classes,
                                   preprocessing=(mean, std), device_type="cpu")
    x = np.random.default_rng(2).random((6, dim))
    w_eff = model.weight.detach().numpy() / std
    b_eff = model.bias.detach().numpy() - w_eff @ mean
    y = (x @ w_eff.T + b_eff).argmax(1)
    radius = robust_radius(classifier, x, y, norm=norm, verbose=False)
    expected = [_polytope_distance(w_eff, b_eff, xi, yi, parse_norm(norm)) for xi, yi in zip(x, y)]
    np.testing.assert_allclose(radius, expected, rtol=1e-6)


class Tempered(nn.Module):
    """The logits of ``model`` divided by a temperature: same argmax everywhere, same attacks."""

    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__()
        self.model, self.temperature = model, temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) / self.temperature


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_radius_is_invariant_to_logit_scaling_while_spectral_norm_is_not(name):
    """z/T for T = 0.1, 10: every radius (first-order and refined) is unchanged to 1e-10, λ_max
    changes by more than 2× for every input, and at T = 1000 λ_max · T² equals λ_max of
    Jᵀ M_uniform J (the small-logit limit, M_uniform = I/K − 11ᵀ/K²) to 1e-2.
    """
    model, x = make_model(name), make_inputs(6).numpy()
    base = fisher_statistics(model, x, norms=NORMS, refine=True, verbose=False)
    assert np.all(base.radius["linf"].values > 0)
    for temperature in (0.1, 10.0):
        tempered = fisher_statistics(Tempered(model, temperature).eval(), x, norms=NORMS,
                                     refine=True, verbose=False)
        for key in base.radius:
            np.testing.assert_allclose(tempered.radius[key].values, base.radius[key].values,
                                       rtol=1e-10)
            np.testing.assert_allclose(tempered.refined_radius[key].values,
                                       base.refined_radius[key].values,
                                       rtol=1e-10)
        ratio = tempered.spectral_norm.values / base.spectral_norm.values
        assert np.all(np.abs(np.log(ratio)) > np.log(2))
    temperature = 1000.0
    cold = (
        fisher_spectral_norm(Tempered(model, temperature).eval(), x, verbose=False) * temperature**2
    )
    rows = AutogradJacobian(model, torch.from_numpy(x)).rows()
    # M_uniform = P/K with the projection P = I − 11ᵀ/K: Jᵀ M J has the spectrum of P G P / K.
    projection = torch.eye(NUM_CLASSES, dtype=torch.float64) - 1.0 / NUM_CLASSES
    limit = (
        torch.linalg.eigvalsh(projection @ rows @ rows.transpose(1, 2) @ projection)[:, -1]
        / NUM_CLASSES
    )
    np.testing.assert_allclose(cold, limit.numpy(), rtol=1e-2)


def test_misclassified_inputs_get_zero():
    """A label other than the prediction gives radius 0 (every norm, refined too); the prediction >
    0.
    """
    model, x = make_model("cnn"), make_inputs(6).numpy()
    predicted = fisher_statistics(model, x, norms=NORMS, refine=True, verbose=False)
    wrong = (predicted.labels + 1) % NUM_CLASSES
    stats = fisher_statistics(model, x, wrong, norms=NORMS, refine=True, verbose=False)
    assert not stats.correct.any() and predicted.correct.all()
    for key in stats.radius:
        assert (
            np.all(stats.radius[key].values == 0) and np.all(stats.refined_radius[key].values == 0)
        )
        assert np.all(predicted.radius[key].values > 0)
    mixed = np.where(np.arange(6) % 2 == 0, predicted.labels, wrong)
    radius = robust_radius(model, x, mixed, norm=2, verbose=False)
    np.testing.assert_array_equal(radius == 0, np.arange(6) % 2 == 1)
    assert predicted_robust_accuracy(model, x, mixed, eps=0.0, norm=2, verbose=False) == 0.5


def test_one_pass_statistics_equal_the_separate_calls_exactly():
    """fisher_statistics equals fisher_spectral_norm, fisher_trace, robust_radius and
    top_eigenvector bit for bit, and takes the K Jacobian rows once per batch.
    """
    model, x = make_model("cnn_batchnorm"), make_inputs(7).numpy()
    y = np.arange(7) % NUM_CLASSES
    with counting_rows() as calls:
        stats = fisher_statistics(model, x, y, norms=NORMS, eigenvector=True, batch_size=4,
                                  verbose=False)
    assert calls == [4, 3]  # one Jacobian per batch
    np.testing.assert_array_equal(
        stats.spectral_norm.values, fisher_spectral_norm(model, x, method="exact", batch_size=4,
                                                         verbose=False)
    )
    np.testing.assert_array_equal(
        stats.trace.values, fisher_trace(model, x, method="exact", batch_size=4, verbose=False)
    )
    for norm, key in zip(NORMS, ("linf", "l2", "l1")):
        np.testing.assert_array_equal(stats.radius[key].values,
                                      robust_radius(model, x, y, norm, batch_size=4,
                                                                               verbose=False))
    _, vector = top_eigenvector(AutogradJacobian(model, torch.from_numpy(x[:4])))
    np.testing.assert_array_equal(stats.eigenvector[:4].reshape(4, -1), vector.numpy())
    assert stats.eigenvector.shape == x.shape


@pytest.mark.parametrize("norm", NORMS, ids=NORM_IDS)
def test_refinement_equals_first_order_on_linear_models(norm):
    """The gradients are the same at the boundary point, so the refined radius is the first-order
    one.
    """
    model = _linear_model(8, 5, seed=4)
    x = torch.randn(6, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64).numpy()
    stats = fisher_statistics(model, x, norms=(norm,), refine=True, verbose=False)
    key = next(iter(stats.radius))
    np.testing.assert_allclose(stats.refined_radius[key].values, stats.radius[key].values,
                               rtol=1e-12)


class QuadraticMargin(nn.Module):
    """Two classes, z = (0, s(x)) with s(x) = c + t + κ t², t = w·x: a margin −s that curves."""

    def __init__(self, w: torch.Tensor, c: float, kappa: float) -> None:
        super().__init__()
        self.w = nn.Parameter(w, requires_grad=False)  # float64, so the adapter computes in float64
        self.c, self.kappa = c, kappa

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x @ self.w
        return torch.stack([torch.zeros_like(t), self.c + t + self.kappa * t**2], dim=1)


def test_refinement_on_a_curved_margin_closed_form():
    """For g(x) = −(c + t + κt²), t = w·x, ℓ2: ∇g = −(1 + 2κt) w, the boundary point moves t by
    r‖w‖, and the refined radius is g / (|1 + 2κ t'| ‖w‖) when the gradient grows (κ > 0).
    """
    w = torch.tensor([0.6, -0.8, 0.0], dtype=torch.float64)  # ‖w‖ = 1
    model = QuadraticMargin(w, c=-2.0, kappa=0.5).eval()
    x = np.array([[0.1, 0.2, 0.5], [0.3, -0.1, 0.2]])
    t = x @ w.numpy()
    g = -(-2.0 + t + 0.5 * t**2)
    slope = np.abs(1 + 2 * 0.5 * t)
    first = g / slope
    t_boundary = t + first  # u = −∇g/‖∇g‖ = +w (the gradient of s is along +w), ‖w‖ = 1
    refined = g / np.maximum(slope, np.abs(1 + 2 * 0.5 * t_boundary))
    stats = fisher_statistics(model, x, np.zeros(2, dtype=int), norms=(2,), refine=True,
                              verbose=False)
    np.testing.assert_allclose(stats.radius["l2"].values, first, rtol=1e-12)
    np.testing.assert_allclose(stats.refined_radius["l2"].values, refined, rtol=1e-12)
    assert np.all(refined < first)


def test_refined_radius_never_exceeds_first_order_and_stays_in_the_box():
    """On a ReLU CNN with clip_values the refined radius is ≤ the first-order one, and the
    boundary points lie in [0, 1].
    """
    model = make_model("cnn")
    classifier = PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=IMAGE_SHAPE,
                                   nb_classes=NUM_CLASSES, clip_values=(0.0, 1.0),
                                   device_type="cpu")
    x = make_inputs(6).numpy()
    stats = fisher_statistics(classifier, x, norms=NORMS, refine=True, verbose=False)
    for key in stats.radius:
        assert np.all(stats.refined_radius[key].values <= stats.radius[key].values)
    jac = AutogradJacobian(model, torch.from_numpy(x))
    rows, labels = jac.rows(), jac.logits.argmax(1)
    margin = margins(jac.logits, labels)
    bounds = (torch.zeros(x[0].size, dtype=torch.float64),
              torch.ones(x[0].size, dtype=torch.float64))
    point = boundary_point(torch.from_numpy(x.reshape(6, -1)), rows, labels, margin,
                           margin_dual_norms(rows, labels, math.inf), math.inf, bounds)
    assert point.min() >= 0 and point.max() <= 1


def test_labels_as_indices_or_one_hot_and_bad_labels():
    """One-hot labels give the indices' radii; wrong length, soft labels and out-of-range classes
    raise.
    """
    model, x = make_model("mlp"), make_inputs(4).numpy()
    y = np.array([0, 3, 3, 9])
    np.testing.assert_array_equal(robust_radius(model, x, np.eye(NUM_CLASSES)[y], verbose=False),
                                  robust_radius(model, x, y, verbose=False))
    with pytest.raises(ValueError, match="one label per input"):
        robust_radius(model, x, y[:3], verbose=False)
    with pytest.raises(ValueError, match="not one-hot"):
        robust_radius(model, x, np.full((4, NUM_CLASSES), 0.1), verbose=False)
    with pytest.raises(ValueError, match=r"must be ≥ 0 and < 10"):
        robust_radius(model, x, np.array([0, 1, 2, 10]), verbose=False)
    with pytest.raises(ValueError, match="integer class indices"):
        check_labels(np.array([0.5, 1.0]), 2)
    with pytest.raises(ValueError, match="norm must be np.inf, 2 or 1"):
        robust_radius(model, x, y, norm=3, verbose=False)
    with pytest.raises(ValueError, match="eps must be a finite number"):
        predicted_robust_accuracy(model, x, y, eps=-0.1, verbose=False)
    with pytest.raises(ValueError, match="cannot give the robust radius"):
        robust_radius(model, x, y, method="hutchinson", verbose=False)


def test_predicted_robust_accuracy_is_the_fraction_above_eps():
    """predicted_robust_accuracy(eps) = mean(radius > 0 and radius ≥ eps), as FisherStatistics gives
    it.
    """
    model, x = make_model("cnn"), make_inputs(8).numpy()
    stats = fisher_statistics(model, x, norms=(np.inf,), refine=True, verbose=False)
    radius = stats.radius["linf"].values
    for eps in (0.0, float(np.median(radius)), float(radius.max()) * 1.01):
        expected = float(((radius > 0) & (radius >= eps)).mean())
        assert predicted_robust_accuracy(model, x, stats.labels, eps, verbose=False) == expected
        assert stats.predicted_robust_accuracy(eps, refined=False) == expected
    assert stats.predicted_robust_accuracy(0.0) == 1.0
    with pytest.raises(ValueError, match="no refined radius for norm l2 was computed"):
        stats.predicted_robust_accuracy(0.1, norm=2)


def test_matrix_free_fallback_leaves_radii_undefined(caplog):
    """With method='auto' and a budget too small for one input's rows, λ_max comes from Lanczos
    (1e-4 of exact) and the radii are NaN with a warning; method='exact' then refuses, saying
    why; a budget for one input at a time gives the radii in batches of one.
    """
    model, x = make_model("mlp"), make_inputs(3).numpy()
    exact = fisher_statistics(model, x, norms=(2,), method="exact", verbose=False)
    with caplog.at_level("WARNING"):
        stats = fisher_statistics(model, x, norms=(2,), memory_budget=100, verbose=False)
    assert "radii are not computed" in caplog.text
    assert stats.spectral_norm.method == "lanczos" and np.all(np.isnan(stats.radius["l2"].values))
    np.testing.assert_allclose(stats.spectral_norm.values, exact.spectral_norm.values, rtol=1e-4)
    with pytest.raises(ValueError, match="The exact route needs about"):
        fisher_statistics(model, x, norms=(2,), method="exact", memory_budget=100, verbose=False)
    with counting_rows() as calls:
        small = fisher_statistics(model, x, norms=(2,), memory_budget=30_000, verbose=False)
    assert small.spectral_norm.method == "exact" and calls[-3:] == [1, 1, 1]
    np.testing.assert_allclose(small.radius["l2"].values, exact.radius["l2"].values, rtol=1e-12)


def test_class_gradient_and_probability_routes_give_the_same_radii():
    """A classifier seen only through predict/class_gradient (a dense J, here of a softmax model:
    log q has the logits' differences) gives the autograd radii (float32 scores: 1e-5), and
    method='auto' keeps a dense Jacobian on the exact route whatever the memory budget.
    """
    from test_art_adapters import ClassGradientOnly

    net = make_model("cnn")
    probabilities = nn.Sequential(net, nn.Softmax(dim=-1)).eval()
    classifier = PyTorchClassifier(model=probabilities, loss=nn.CrossEntropyLoss(),
                                   input_shape=IMAGE_SHAPE,
                                   nb_classes=NUM_CLASSES, clip_values=(0.0, 1.0),
                                   device_type="cpu")
    x = make_inputs(4).numpy()
    expected = fisher_statistics(net, x, norms=NORMS, verbose=False)
    # box=False: the bare module has no clip_values to take the distances in.
    dense = fisher_statistics(ClassGradientOnly(classifier), x, norms=NORMS, memory_budget=100,
                              box=False,
                              verbose=False)
    assert dense.spectral_norm.method == "exact"
    for key in expected.radius:
        np.testing.assert_allclose(dense.radius[key].values, expected.radius[key].values, rtol=1e-5)
