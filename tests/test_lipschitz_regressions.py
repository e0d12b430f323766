"""Certificates that were wrong once, each against an exact value.

Every case here once gave a bound below the exact ``‖J(x)‖₂`` (float64 ``jacrev`` at a witness
input), a certified value that contradicted a closed form, or accepted what it should refuse:
layers whose hidden options shared one cached constant, max pooling of maps without a channel
axis, binary one-logit classifiers, a classifier's module changed by the bound, labels and
budgets taken without a check, NaN radii counted as non-robust, and bare errors.
"""

from __future__ import annotations

import copy
import logging
import math

import numpy as np
import pytest
import torch
from art.estimators.classification import PyTorchClassifier
from torch import nn

from art_fim import fisher_spectral_norm, fisher_statistics
from art_fim.lipschitz import (
    UnsupportedLayerError,
    certified_accuracy,
    certified_fisher_bound,
    certified_radius,
    lipschitz_bound,
)
from lipschitz_cases import jacobian_norm


def materialised_norm(layer: nn.Module, shape: tuple[int, ...]) -> float:
    """σ_max of a linear layer's matrix on inputs of ``shape``."""
    return jacobian_norm(layer, torch.zeros(shape, dtype=torch.float64))


class TwoBranches(nn.Module):
    """``[a(x), b(x)]`` flattened and concatenated."""

    def __init__(self, a: nn.Module, b: nn.Module) -> None:
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.a(x).flatten(1), self.b(x).flatten(1)], dim=1)


# ------------------------------------------------------------------ 1: hidden layer options
TWINS = {
    "divisor_override": (nn.AvgPool2d(3, 1, 1), nn.AvgPool2d(3, 1, 1, divisor_override=1),
                         (1, 5, 5)),
    "count_include_pad": (nn.AvgPool2d(3, 1, 1), nn.AvgPool2d(3, 1, 1, count_include_pad=False),
                          (1, 5, 5)),
    "align_corners": (nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                      nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True), (1, 4, 4)),
    "ceil_mode": (nn.AvgPool1d(2, 2, 1), nn.AvgPool1d(2, 2, 1, ceil_mode=True), (1, 6)),
}


@pytest.mark.parametrize("case", sorted(TWINS))
@pytest.mark.parametrize("order", ["as given", "swapped"])
def test_layers_that_differ_only_in_hidden_options_get_their_own_constants(case, order):
    """Each branch's constant is σ_max of its own matrix, whichever branch comes first; the
    concatenation's bound √(L_a² + L_b²) dominates the exact norm of the whole.
    """
    first, second, shape = TWINS[case]
    if order == "swapped":
        first, second = second, first
    model = TwoBranches(first, second).double().eval()
    result = lipschitz_bound(model, shape)
    constants = [r.constant for r in result.layers]
    expected = [materialised_norm(first, shape), materialised_norm(second, shape)]
    assert constants == pytest.approx(expected, rel=1e-6)
    assert result.value == pytest.approx(math.hypot(*expected), rel=1e-6)
    assert result.value >= materialised_norm(model, shape) * (1 - 1e-9)


def test_functional_pools_with_different_keyword_options_are_not_shared():
    """``F.avg_pool2d(x, 3, 1, 1)`` and the same call with ``divisor_override=1``: 9× apart."""

    class Functional(nn.Module):
        def forward(self, x):
            a = nn.functional.avg_pool2d(x, 3, 1, 1)
            b = nn.functional.avg_pool2d(x, 3, 1, 1, divisor_override=1)
            return torch.cat([a.flatten(1), b.flatten(1)], 1)

    model = Functional().eval()
    constants = [r.constant for r in lipschitz_bound(model, (1, 5, 5)).layers]
    assert constants[1] == pytest.approx(9 * constants[0], rel=1e-6)


# ------------------------------------------------------------------ 2: unbatched max pooling
def test_max_pool_1d_on_a_map_without_channel_axis_reads_the_last_axis():
    """Flatten → MaxPool1d(3, 1, 1) on ``[N, 8]``: position 3, the maximum of its three windows
    at ``x = e₃``, gives a Jacobian column with three ones: ``‖J‖ = √3``, the bound exactly.
    """
    model = nn.Sequential(nn.Flatten(), nn.MaxPool1d(3, 1, 1)).eval()
    witness = torch.zeros(8, dtype=torch.float64)
    witness[3] = 1.0
    exact = jacobian_norm(model, witness)
    assert exact == pytest.approx(math.sqrt(3), rel=1e-12)
    assert lipschitz_bound(model, (8,)).value == pytest.approx(exact, rel=1e-12)


def test_max_pool_2d_on_a_map_without_channel_axis_reads_the_last_two_axes():
    """``x[:, 0]`` → MaxPool2d(2, 1) on ``[N, 4, 4]``: an interior peak lies in four windows."""

    class Unbatched(nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = nn.MaxPool2d(2, 1)

        def forward(self, x):
            return self.pool(x[:, 0])

    model = Unbatched().eval()
    witness = torch.zeros(1, 4, 4, dtype=torch.float64)
    witness[0, 1, 2] = 1.0
    exact = jacobian_norm(model, witness)
    assert exact == pytest.approx(2.0, rel=1e-12)
    assert lipschitz_bound(model, (1, 4, 4)).value == pytest.approx(exact, rel=1e-12)


# ------------------------------------------------------------------ 3: binary one-logit models
def _binary_linear(seed: int = 0) -> tuple[nn.Module, np.ndarray, np.ndarray]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 1)).eval()
    x = np.random.default_rng(seed).normal(size=(12, 6)).astype(np.float32)
    return model, x, model[0].weight.detach().double().numpy()[0]


def test_binary_logit_fisher_bound_is_sigma_one_minus_sigma_times_l_squared():
    """``λ_max(F) = σ(1 − σ)‖w‖²`` for a one-logit linear model, and the certified bound with
    ``L = ‖w‖`` equals it (it was 0 for every input).
    """
    model, x, w = _binary_linear()
    t = model(torch.from_numpy(x)).double().detach().numpy()[:, 0]
    sigma = 1 / (1 + np.exp(-t))
    closed_form = sigma * (1 - sigma) * (w @ w)
    exact = fisher_spectral_norm(model, x, method="exact", verbose=False, output_type="logits")
    assert exact == pytest.approx(closed_form, rel=1e-5)
    certified = certified_fisher_bound(model, x, output_type="logits")
    assert certified == pytest.approx(closed_form, rel=1e-6)
    assert np.all(certified > 0)


def test_binary_logit_radius_is_the_distance_to_the_hyperplane():
    """``|t| / ‖w‖`` exactly (it raised IndexError); accuracy counts labels 0/1 and one-hot."""
    model, x, w = _binary_linear(1)
    t = model(torch.from_numpy(x)).double().detach().numpy()[:, 0]
    distance = np.abs(t) / np.linalg.norm(w)
    radius = certified_radius(model, x, output_type="logits")
    assert radius == pytest.approx(distance, rel=1e-6)
    labels = (t > 0).astype(int)
    labels[0] = 1 - labels[0]  # one wrong label
    eps = float(np.median(distance))
    expected = float(np.mean((labels == (t > 0)) & (distance > eps * (1 + 1e-6))))
    assert (
        certified_accuracy(model, x, labels, eps, output_type="logits") == pytest.approx(expected)
    )
    assert (
        certified_accuracy(model, x, np.eye(2)[labels], eps, output_type="logits")
        == pytest.approx(expected)
    )


def test_binary_sigmoid_output_radius_is_sound_and_fisher_is_refused():
    """A sigmoid output ``s``: the radius ``|s − ½| / L`` with ``L = ‖w‖/4`` never exceeds the
    distance to the hyperplane; the Fisher bound needs logits and says so.
    """
    model, x, w = _binary_linear(2)
    model, x = model.double(), x.astype(np.float64)  # s − ½ in float64: no rounding near ½
    t = model(torch.from_numpy(x)).detach().numpy()[:, 0]
    probabilities = nn.Sequential(model, nn.Sigmoid()).eval()
    radius = certified_radius(probabilities, x, output_type="probabilities")
    assert np.all(radius <= np.abs(t) / np.linalg.norm(w) * (1 + 1e-6))
    assert np.all(radius > 0)
    with pytest.raises(ValueError, match="probabilities"):
        certified_fisher_bound(probabilities, x, output_type="probabilities")


# ------------------------------------------------------------------ 4: the caller's module
def _training_classifier() -> tuple[PyTorchClassifier, nn.Module]:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.3),
                          nn.Linear(8, 3))
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 1.5)
    model.train()
    model[3].eval()  # a mixed state must come back as it was, too
    classifier = PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=(5,),
                                   nb_classes=3,
                                   clip_values=(-2.0, 2.0), device_type="cpu")
    return classifier, model


def test_bound_and_certificates_leave_the_classifiers_module_bit_identical(caplog):
    """Weights, buffers and every training flag are as they were; the bound is that of the
    eval-mode model, as ART's predict runs it, and the training mode is reported.
    """
    classifier, model = _training_classifier()
    state = copy.deepcopy(model.state_dict())
    flags = [m.training for m in model.modules()]
    x = np.random.default_rng(0).uniform(-2, 2, size=(16, 5)).astype(np.float32)
    with caplog.at_level(logging.INFO, logger="art_fim.lipschitz.graph"):
        bound = lipschitz_bound(classifier)
    assert "training mode" in caplog.text
    certified_fisher_bound(classifier, x, bound)
    certified_radius(classifier, x)
    certified_accuracy(classifier, x, np.zeros(16, dtype=int), 0.01)
    assert [m.training for m in model.modules()] == flags
    after = model.state_dict()
    assert list(after) == list(state)
    assert all(torch.equal(after[k], state[k]) and after[k].dtype == state[k].dtype for k in state)
    assert (
        bound.value == pytest.approx(lipschitz_bound(copy.deepcopy(model).eval(), (5,)).value,
                                     rel=1e-12)
    )


def test_bare_module_in_training_mode_is_refused_and_left_alone():
    _, model = _training_classifier()
    flags = [m.training for m in model.modules()]
    with pytest.raises(ValueError, match="training mode"):
        lipschitz_bound(model, (5,))
    assert [m.training for m in model.modules()] == flags


# ------------------------------------------------------------------ 5: what certified_accuracy
# takes
def _linear_classifier() -> tuple[nn.Module, np.ndarray, np.ndarray]:
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(4, 3)).eval()
    x = np.random.default_rng(4).normal(size=(20, 4)).astype(np.float32)
    scores = model(torch.from_numpy(x)).detach().double().numpy()
    return model, x, scores


def test_certified_accuracy_matches_the_closed_form_of_a_linear_model():
    """``correct ∧ margin > √2 ‖W‖₂ ε₂`` with ``ε₂ = ε`` (ℓ2, ℓ1) or ``√d ε`` (ℓ∞); the norm
    is read as :func:`~art_fim.robust_radius` reads it (``'inf'``, ``'L2'``, ``1``).
    """
    model, x, scores = _linear_classifier()
    labels = scores.argmax(1)
    labels[:3] = (labels[:3] + 1) % 3
    top2 = np.sort(scores, 1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    lipschitz = float(torch.linalg.matrix_norm(model[0].weight.detach().double(), ord=2))
    eps = 0.1
    for norm, eps_2 in [(2, eps), ("L2", eps), ("inf", 2 * eps), (np.inf, 2 * eps), (1, eps),
                        ("l1", eps)]:
        expected = np.mean(
            (scores.argmax(1) == labels) & (margin > math.sqrt(2) * lipschitz * eps_2)
        )
        assert certified_accuracy(model, x, labels, eps, norm=norm) == pytest.approx(expected), norm
    column = certified_accuracy(model, x, labels[:, None], eps)
    assert column == certified_accuracy(model, x, labels, eps)


@pytest.mark.parametrize(
    "labels,eps,norm,message",
    [
        (np.full(20, 3), 0.1, 2, "class indices"),
        (np.full(20, -1), 0.1, 2, "class indices"),
        (np.zeros(1, dtype=int), 0.1, 2, "shape"),
        (np.full(20, 0.5), 0.1, 2, "integer"),
        (np.zeros(20, dtype=int), -1.0, 2, "eps"),
        (np.zeros(20, dtype=int), math.nan, 2, "eps"),
        (np.zeros(20, dtype=int), math.inf, 2, "eps"),
        (np.zeros(20, dtype=int), 0.1, 3, "norm"),
        (np.zeros(20, dtype=int), 0.1, "fro", "norm"),
    ],
)
def test_certified_accuracy_refuses_what_robust_radius_refuses(labels, eps, norm, message):
    model, x, _ = _linear_classifier()
    with pytest.raises(ValueError, match=message):
        certified_accuracy(model, x, labels, eps, norm=norm)


# ------------------------------------------------------------------ 6: radii not computed
def test_nan_radii_are_refused_not_counted_as_non_robust():
    """Jacobian rows over ``memory_budget``: NaN radii, which must not read as 0% robust for a
    model that is 100% accurate.
    """
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    x = np.random.default_rng(0).random((4, 1, 8, 8)).astype(np.float32)
    labels = model(torch.from_numpy(x)).argmax(1).numpy()
    stats = fisher_statistics(model, x, labels, norms=(2,), memory_budget=2000, verbose=False)
    assert stats.accuracy == 1.0 and np.isnan(stats.radius["l2"].values).all()
    with pytest.raises(ValueError, match="NaN.*memory_budget"):
        stats.predicted_robust_accuracy(0.0, norm=2)


# ------------------------------------------------------------------ 7: clear refusals
class SelfProduct(nn.Module):
    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.linear = nn.Linear(4, 4)

    def forward(self, x):
        h = self.linear(x).reshape(-1, 2, 2)
        return h @ h if self.how == "@" else torch.matmul(h, h)


@pytest.mark.parametrize("how", ["@", "matmul"])
def test_product_of_a_tensor_with_itself_is_refused_by_name(how):
    with pytest.raises(UnsupportedLayerError, match="product of two input-dependent tensors"):
        lipschitz_bound(SelfProduct(how).eval(), (4,))


@pytest.mark.parametrize(
    "layer,shape", [(nn.BatchNorm1d(4, track_running_stats=False), (4,)),
                    (nn.BatchNorm1d(4, track_running_stats=False), (4, 3)),
                    (nn.BatchNorm2d(4, track_running_stats=False), (4, 3, 3))],
)
def test_batchnorm_without_running_statistics_gets_one_clear_message(layer, shape):
    with pytest.raises(UnsupportedLayerError, match="no running statistics"):
        lipschitz_bound(nn.Sequential(layer).eval(), shape)
