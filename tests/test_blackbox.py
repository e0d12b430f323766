"""Query-only estimators: exact differences on linear models, unbiased sketches, ART black boxes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from art.estimators.classification import BlackBoxClassifier, BlackBoxClassifierNeuralNetwork
from torch import nn

from art_fim import (
    BlackBoxFisher,
    FiniteDifferenceJacobian,
    FisherInformationMetric,
    LabelOnlyOutputError,
    fisher_spectral_norm,
    fisher_statistics,
    fisher_trace,
    robust_radius,
    sample_directions,
    sketch_gram,
)
from cases import IMAGE_SHAPE, NUM_CLASSES, make_inputs, make_model

DIM = int(np.prod(IMAGE_SHAPE))
COORDINATE_BUDGET = 2 * DIM + 3


def _linear(seed: int = 0) -> nn.Module:
    """f(x) = W x + b on flattened inputs: every difference is exact up to rounding."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(DIM, NUM_CLASSES)).double().eval()


def _predict(model: nn.Module):
    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.as_tensor(x, dtype=torch.float64)).numpy()

    return predict


class BoxCheckedClassifier:
    """A predict-only classifier that fails if any query leaves its clip_values."""

    def __init__(self, model: nn.Module, clip_values: tuple[float, float] = (0.0, 1.0)) -> None:
        self._predict = _predict(model)
        self.input_shape = IMAGE_SHAPE
        self.clip_values = clip_values
        self.queried = 0
        self.at_bounds = 0

    def predict(self, x: np.ndarray, batch_size: int = 128) -> np.ndarray:
        assert x.min() >= self.clip_values[0] and x.max() <= self.clip_values[1], (
            "query outside the box"
        )
        self.queried += len(x)
        self.at_bounds += int(np.isin(x, self.clip_values).sum())
        return self._predict(x)


def test_linear_model_differences_equal_w_v():
    """For f(x) = Wx + b, the central difference along v is W v up to rounding (1e-8)."""
    model = _linear()
    x = make_inputs(3).numpy()
    jac = FiniteDifferenceJacobian(_predict(model), x, dtype="float64")
    v = torch.randn(3, DIM, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    w = model[1].weight.detach()
    np.testing.assert_allclose(jac.jvp(v).numpy(), (v @ w.T).numpy(), rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(jac.gram().numpy()[0], (w @ w.T).numpy(), rtol=1e-8)
    assert jac.queries.tolist() == [1 + 2 + 2 * DIM] * 3


@pytest.mark.parametrize("quantity", ["spectral_norm", "trace"])
def test_coordinate_mode_reproduces_exact_on_linear_model(quantity):
    """Coordinate directions give J exactly: λ_max and tr F equal the white-box values to 1e-8."""
    model, x = _linear(), make_inputs(4).numpy()
    exact = FisherInformationMetric(model, method="exact",
                                    verbose=False).estimate(x, quantity).values
    fisher = BlackBoxFisher(model, max_queries=COORDINATE_BUDGET, dtype="float64", verbose=False)
    est = fisher.estimate(x, quantity)
    np.testing.assert_allclose(est.values, exact, rtol=1e-8)
    assert est.iterations.tolist() == [DIM] * 4 and np.all(est.stderr == 0)
    assert est.queries.tolist() == [COORDINATE_BUDGET] * 4


@pytest.mark.parametrize("seed", [0, 1, 2], ids=lambda s: f"seed={s}")
@pytest.mark.parametrize(
    ("kind", "m"),
    [("gaussian", 8), ("orthogonal", 8), ("orthogonal", 20)],
    ids=["gaussian", "orthogonal", "orthogonal-m>d"],
)
def test_sketch_is_unbiased(kind, m, seed):
    """The mean of 4,000 sketches Ĝ is within 4 standard errors of J Jᵀ entrywise (d=12, K=5)."""
    rng = np.random.default_rng(seed)
    jac = rng.standard_normal((5, 12)) * rng.uniform(0.1, 3.0, size=12)
    jv = np.stack([sample_directions(kind, 0, m, 12, rng) @ jac.T for _ in range(4000)])
    sketches = sketch_gram(torch.from_numpy(jv)).numpy()
    stderr = sketches.std(0, ddof=1) / np.sqrt(len(sketches))
    assert np.all(np.abs(sketches.mean(0) - jac @ jac.T) <= 4 * stderr + 1e-12)


def test_orthogonal_directions_lower_the_error():
    """At m = d/2 orthogonal directions give a smaller sketch error than Gaussian ones."""
    rng = np.random.default_rng(0)
    jac = rng.standard_normal((5, 40))
    errors = {}
    for kind in ("gaussian", "orthogonal"):
        jv = np.stack([sample_directions(kind, 0, 20, 40, rng) @ jac.T for _ in range(300)])
        sketches = sketch_gram(torch.from_numpy(jv)).numpy()
        errors[kind] = np.linalg.norm(sketches - jac @ jac.T, axis=(1, 2)).mean()
    assert errors["orthogonal"] < 0.85 * errors["gaussian"]


def test_label_only_classifier_is_refused():
    """A black box returning one-hot labels raises LabelOnlyOutputError, saying why."""
    model = make_model("mlp")

    def labels(x: np.ndarray) -> np.ndarray:
        return np.eye(NUM_CLASSES)[_predict(model)(x).argmax(1)]

    classifier = BlackBoxClassifier(labels, IMAGE_SHAPE, NUM_CLASSES, clip_values=(0.0, 1.0))
    with pytest.raises(LabelOnlyOutputError, match="one-hot labels, not scores"):
        fisher_spectral_norm(classifier, make_inputs(3).numpy(), method="blackbox", verbose=False)


@pytest.mark.parametrize("budget", [COORDINATE_BUDGET, 101], ids=["coordinate", "orthogonal"])
def test_queries_stay_inside_clip_values(budget):
    """Inputs with pixels exactly at 0 and 1: no query leaves [0, 1], and with one-sided
    differences at the bounds coordinate mode still matches the exact value (rtol 1e-4).
    """
    model = make_model("mlp")
    x = make_inputs(3).numpy()
    x[:, :, :2] = 0.0
    x[:, :, -2:] = 1.0
    classifier = BoxCheckedClassifier(model)
    est = BlackBoxFisher(classifier, max_queries=budget, dtype="float64", verbose=False).estimate(x)
    assert classifier.queried == est.queries.sum() and classifier.at_bounds > 0
    if budget == COORDINATE_BUDGET:
        exact = fisher_spectral_norm(model, x, method="exact", verbose=False)
        np.testing.assert_allclose(est.values, exact, rtol=1e-4)


@pytest.mark.parametrize("wrapper", [BlackBoxClassifier, BlackBoxClassifierNeuralNetwork])
def test_art_black_box_classifiers(wrapper):
    """ART's black-box wrappers (float32 scores): coordinate mode within 1e-3 of the exact
    white-box λ_max; a 203-query sketch within 4 bootstrap standard errors of it.
    """
    model = make_model("mlp")
    x = make_inputs(4).numpy()
    classifier = wrapper(_predict(model), IMAGE_SHAPE, NUM_CLASSES, clip_values=(0.0, 1.0))
    exact = FisherInformationMetric(model, method="exact", verbose=False)(x)
    coordinate = fisher_spectral_norm(
        classifier, x, method="blackbox", verbose=False,
        blackbox_params={"max_queries": COORDINATE_BUDGET}
    )
    np.testing.assert_allclose(coordinate, exact, rtol=1e-3)
    est = FisherInformationMetric(
        classifier, method="blackbox", verbose=False, blackbox_params={"max_queries": 203}
    ).estimate(x)
    assert est.method == "blackbox" and est.iterations.tolist() == [100] * 4
    assert est.queries.tolist() == [203] * 4
    assert np.all(np.abs(est.values - exact) <= 4 * est.stderr)


def test_blackbox_trace_through_the_public_api():
    """fisher_trace(method="blackbox") is unbiased: within 4 bootstrap standard errors."""
    model, x = make_model("cnn"), make_inputs(4).numpy()
    exact = fisher_trace(model, x, method="exact", verbose=False)
    metric = FisherInformationMetric(
        model, method="blackbox", verbose=False, blackbox_params={"max_queries": 201}
    )
    est = metric.trace(x)
    assert np.all(np.abs(est.values - exact) <= 4 * est.stderr)
    values = fisher_trace(model, x, method="blackbox", verbose=False,
                          blackbox_params={"max_queries": 201})
    np.testing.assert_array_equal(values, est.values)


def test_probability_outputs_give_the_same_values():
    """A black box returning softmax probabilities gives the logits route's values (same
    directions).
    """
    model = make_model("cnn")
    probs = nn.Sequential(model, nn.Softmax(dim=-1)).eval()
    x = make_inputs(3).numpy()
    for budget in (101, COORDINATE_BUDGET):
        from_logits = BlackBoxFisher(model, max_queries=budget, dtype="float64", verbose=False)(x)
        from_probs = BlackBoxFisher(probs, max_queries=budget, dtype="float64", verbose=False)
        np.testing.assert_allclose(from_probs(x), from_logits, rtol=1e-5)
    with pytest.raises(ValueError, match="output_type='logits' was declared"):
        BlackBoxFisher(probs, output_type="logits", verbose=False)(x)


def test_rounding_dominated_differences_warn():
    """Scores quantised to 1e-3 with a small step: the h / 2h check warns and suggests float64."""
    model = make_model("mlp")

    def coarse(x: np.ndarray) -> np.ndarray:
        return np.round(_predict(model)(x), 3)

    with pytest.warns(RuntimeWarning, match="rounding .* dominates.*float64"):
        BlackBoxFisher(coarse, max_queries=21, step=1e-2, verbose=False)(make_inputs(3).numpy())


def test_budget_errors():
    """Too small a budget, or too few queries for coordinate mode, is refused with the number
    needed.
    """
    x = make_inputs(2).numpy()
    with pytest.raises(ValueError, match=f"needs max_queries ≥ {COORDINATE_BUDGET}"):
        BlackBoxFisher(make_model("mlp"), max_queries=300, directions="coordinate",
                       verbose=False)(x)
    with pytest.raises(ValueError, match="max_queries must be at least 7"):
        BlackBoxFisher(make_model("mlp"), max_queries=5, verbose=False)(x)


def test_one_sketch_serves_both_quantities():
    """estimate_many gives, from one set of queries, the values of separate estimate calls."""
    model, x = make_model("cnn"), make_inputs(3).numpy()
    fisher = BlackBoxFisher(model, max_queries=61, dtype="float64", verbose=False)
    both = fisher.estimate_many(x)
    for quantity in ("spectral_norm", "trace"):
        single = fisher.estimate(x, quantity)
        np.testing.assert_array_equal(both[quantity].values, single.values)
        np.testing.assert_array_equal(both[quantity].queries, single.queries)


def test_coordinate_mode_radii_equal_the_white_box_radii():
    """Coordinate directions give J: ℓ∞, ℓ2 and ℓ1 radii equal the white-box ones to 1e-8 (linear
    model), with zero standard error; the predictions come with them.
    """
    model, x = _linear(), make_inputs(4).numpy()
    y = np.array([0, 1, 2, 3])
    white = fisher_statistics(model, x, y, norms=(np.inf, 2, 1), verbose=False)
    black = fisher_statistics(model, x, y, norms=(np.inf, 2, 1), method="blackbox", verbose=False,
                              blackbox_params={"max_queries": COORDINATE_BUDGET,
                                               "dtype": "float64"})
    for key in ("linf", "l2", "l1"):
        np.testing.assert_allclose(black.radius[key].values, white.radius[key].values, rtol=1e-8)
        assert np.all(black.radius[key].stderr == 0)
    np.testing.assert_array_equal(black.correct, white.correct)
    np.testing.assert_allclose(black.spectral_norm.values, white.spectral_norm.values, rtol=1e-8)


def test_sketch_l2_radius_within_its_standard_error():
    """From a 201-query sketch the ℓ2 radius (G_yy + G_jj − 2G_yj from Ĝ) lies within 4 bootstrap
    standard errors of the exact one, and that error is a few percent (K = 10, m = 99).
    """
    model, x = make_model("cnn"), make_inputs(6).numpy()
    y = _predict(model)(x).argmax(1)
    y[0] = (y[0] + 1) % NUM_CLASSES  # one wrong label: radius 0
    exact = robust_radius(model, x, y, norm=2, verbose=False)
    est = BlackBoxFisher(model, max_queries=201, dtype="float64",
                         verbose=False).estimate(x, "radius_l2", y)
    correct = exact > 0
    assert correct.tolist() == [False] + [True] * 5 and est.values[0] == 0
    assert np.all(np.abs(est.values - exact)[correct] <= 4 * est.stderr[correct])
    assert np.all(est.stderr[correct] < 0.2 * exact[correct])


def test_sketch_refuses_the_linf_radius():
    """The ℓ∞ radius needs J's rows: a random-direction sketch refuses it and names the fixes."""
    model, x = make_model("mlp"), make_inputs(2).numpy()
    message = r"radius_linf need the rows of J.*directions='coordinate' with max_queries ≥ 387"
    with pytest.raises(ValueError, match=message):
        robust_radius(model, x, np.zeros(2, dtype=int), norm=np.inf, method="blackbox",
                      verbose=False,
                      blackbox_params={"max_queries": 101})
    with pytest.raises(ValueError, match="query-only route"):
        fisher_statistics(model, x, refine=True, method="blackbox", verbose=False)
