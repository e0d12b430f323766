"""Robust accuracy without an attack: refined by default, exact inside the box for linear models,
and the accuracy-vs-ε curve consistent with the one-budget call.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from art.estimators.classification import PyTorchClassifier
from hypothesis import given, settings
from hypothesis import strategies as st
from test_box_distance import _oracle
from torch import nn

from art_fim import fisher_statistics, predicted_robust_accuracy, robust_radius
from art_fim.curve import default_grid, robust_accuracy_curve

NORMS = (math.inf, 2.0, 1.0)


def _curved(seed: int, classes: int = 4, dim: int = 6) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(dim, 8), nn.Tanh(), nn.Linear(8, classes)).double().eval()


def _box_classifier(model: nn.Module, dim: int, classes: int) -> PyTorchClassifier:
    return PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=(dim,),
                             nb_classes=classes,
                             clip_values=(0.0, 1.0), device_type="cpu")


def test_the_default_is_the_refined_radius():
    """predicted_robust_accuracy and robust_radius refine unless told not to; on a curved model
    the refined radius is strictly smaller for some input, so the default is observably refined.
    """
    model = _curved(0)
    x = np.random.default_rng(0).random((20, 6))
    y = model(torch.from_numpy(x)).argmax(1).numpy()
    stats = fisher_statistics(model, x, y, norms=(2,), verbose=False)
    first, refined = stats.radius["l2"].values, stats.refined_radius["l2"].values
    assert np.any(refined < first)
    np.testing.assert_array_equal(robust_radius(model, x, y, norm=2, verbose=False), refined)
    np.testing.assert_array_equal(robust_radius(model, x, y, norm=2, refine=False, verbose=False),
                                  first)
    eps = float(np.median(refined))
    expected = np.mean((refined > 0) & (refined >= eps))
    assert predicted_robust_accuracy(model, x, y, eps, norm=2, verbose=False) == expected


@pytest.mark.parametrize("norm", NORMS)
def test_linear_models_inside_the_box_get_the_lp_qp_distance(norm):
    """For z = Wx + b on [0, 1]^d the radius (first-order and refined: equal for linear models)
    is the minimum over competitors of the LP/QP box distance, to 1e-6.
    """
    rng = np.random.default_rng(3)
    dim, classes = 5, 4
    checked = 0
    for _ in range(6):
        model = nn.Linear(dim, classes).double().eval()
        with torch.no_grad():
            model.weight.copy_(torch.from_numpy(rng.normal(size=(classes, dim)) * 3))
            model.bias.copy_(torch.from_numpy(rng.normal(size=classes)))
        x = rng.random((8, dim))
        x[:, 0] = np.where(rng.random(8) < 0.5, 0.0, x[:, 0])  # some coordinates on a face
        classifier = _box_classifier(model, dim, classes)
        z = model(torch.from_numpy(x)).detach().numpy()
        y = z.argmax(1)
        stats = fisher_statistics(classifier, x, y, norms=(norm,), verbose=False)
        key = {math.inf: "linf", 2.0: "l2", 1.0: "l1"}[norm]
        w = model.weight.detach().numpy()
        for i in range(len(x)):
            expected = min(
                _oracle(z[i, y[i]] - z[i, j], w[y[i]] - w[j], x[i], np.zeros(dim), np.ones(dim),
                        norm)
                for j in range(classes) if j != y[i]
            )
            for radius in (stats.radius[key].values[i], stats.refined_radius[key].values[i]):
                if math.isinf(expected):
                    assert math.isinf(radius)
                else:
                    assert radius == pytest.approx(expected, rel=1e-6, abs=1e-9)
            checked += 1
    assert checked == 48


@settings(max_examples=15, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000), classes=st.integers(2, 5), box=st.booleans(),
       refine_competitors=st.integers(1, 4), norm=st.sampled_from(NORMS))
def test_curve_matches_the_one_budget_call_is_non_increasing_and_refined_never_exceeds(
    seed, classes, box, refine_competitors, norm
):
    """On random curved models and options: the curve at any ε equals predicted_robust_accuracy
    there, it never increases, and the refined radius is ≤ the first-order one for every input.
    """
    model = _curved(seed, classes)
    rng = np.random.default_rng(seed)
    x = rng.random((12, 6))
    y = rng.integers(0, classes, 12)
    classifier = _box_classifier(model, 6, classes) if box else model
    stats = fisher_statistics(classifier, x, y, norms=(norm,),
                              refine_competitors=refine_competitors,
                              verbose=False)
    key = {math.inf: "linf", 2.0: "l2", 1.0: "l1"}[norm]
    first, refined = stats.radius[key].values, stats.refined_radius[key].values
    assert np.all(refined <= first)
    curves = stats.accuracy_curves()
    curve = curves[key]
    assert np.all(np.diff(curve.first_order) <= 0) and np.all(np.diff(curve.refined) <= 0)
    assert np.all(curve.refined <= curve.first_order)
    assert curve.first_order[0] == pytest.approx(np.mean(first > 0))
    assert curve.refined[-1] == 0.0 or not np.isfinite(refined).all()
    for eps in curve.eps[:: max(1, len(curve.eps) // 5)]:
        assert (
            robust_accuracy_curve(refined, [eps])[0] == stats.predicted_robust_accuracy(eps, norm)
        )
        assert stats.predicted_robust_accuracy(eps, norm) == predicted_robust_accuracy(
            classifier, x, y, float(eps), norm=norm, refine_competitors=refine_competitors,
            verbose=False
        )


def test_curves_refuse_radii_that_were_not_computed():
    with pytest.raises(ValueError, match="NaN"):
        robust_accuracy_curve(np.array([0.1, np.nan]), [0.0])
    assert np.array_equal(default_grid(np.zeros(3)), np.zeros(1))
