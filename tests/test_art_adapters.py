"""ART integration: preprocessing, the class_gradient route, output types, the metric class."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from art.estimators.classification import PyTorchClassifier
from torch import nn

from art_fim import FisherInformationMetric, fisher_spectral_norm, fisher_trace
from art_fim.adapters import ClassGradientAdapter
from cases import IMAGE_SHAPE, NUM_CLASSES, make_model

MEAN = np.array([0.49, 0.48, 0.45])
STD = np.array([0.25, 0.24, 0.26])


class Normalize(nn.Module):
    """(x − mean)/std inside the network, as RobustBench models do."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).reshape(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _classifier(model: nn.Module, **kwargs) -> PyTorchClassifier:
    return PyTorchClassifier(
        model=model, loss=nn.CrossEntropyLoss(), input_shape=IMAGE_SHAPE, nb_classes=NUM_CLASSES,
        clip_values=(0.0, 1.0), device_type="cpu", **kwargs,
    )


class ClassGradientOnly:
    """An ART classifier seen only through predict and class_gradient (like TF or JAX ones)."""

    def __init__(self, classifier: PyTorchClassifier) -> None:
        self._classifier = classifier
        self.input_shape = classifier.input_shape
        self.clip_values = classifier.clip_values
        self.nb_classes = classifier.nb_classes

    def predict(self, x: np.ndarray, batch_size: int = 128) -> np.ndarray:
        return self._classifier.predict(x, batch_size=batch_size)

    def class_gradient(self, x: np.ndarray, label=None) -> np.ndarray:
        return self._classifier.class_gradient(x, label=label)


@pytest.fixture
def x() -> np.ndarray:
    return np.random.default_rng(0).random((6, *IMAGE_SHAPE))


def test_preprocessing_equals_normalisation_inside_the_model(x):
    """PyTorchClassifier(preprocessing=(mean, std)) ≡ the same net with Normalize inside."""
    net = make_model("cnn_batchnorm")
    outside = _classifier(net, preprocessing=(MEAN, STD))
    inside = nn.Sequential(Normalize(), net).double().eval()
    expected = fisher_spectral_norm(inside, x, verbose=False)
    np.testing.assert_allclose(fisher_spectral_norm(outside, x, verbose=False), expected, rtol=1e-6)
    np.testing.assert_allclose(
        fisher_trace(outside, x, verbose=False), fisher_trace(inside, x, verbose=False), rtol=1e-6
    )
    # The normalisation matters: ignoring it would scale the Fisher by about 1/std² ≈ 16.
    plain = fisher_spectral_norm(net, x, verbose=False)
    assert np.all(np.abs(plain / expected - 1) > 0.1)


def test_class_gradient_route_equals_pytorch_route(x):
    """Materialising J from class_gradient gives the PyTorch (autograd) values."""
    classifier = _classifier(make_model("cnn"), preprocessing=(MEAN, STD))
    expected = fisher_spectral_norm(classifier, x, verbose=False)
    via_gradients = fisher_spectral_norm(ClassGradientOnly(classifier), x, verbose=False)
    # predict returns float32 logits, hence the float32-level tolerance.
    np.testing.assert_allclose(via_gradients, expected, rtol=1e-5)
    assert isinstance(
        __import__("art_fim").adapter_for(ClassGradientOnly(classifier)), ClassGradientAdapter
    )


def test_probability_outputs_give_the_same_fisher(x):
    """A model ending in softmax has F = Σ (1/q_k) ∇q_k ∇q_kᵀ, equal to the logits model's F."""
    net = make_model("mlp")
    probs_model = nn.Sequential(net, nn.Softmax(dim=-1)).eval()
    expected = fisher_spectral_norm(net, x, verbose=False)
    np.testing.assert_allclose(fisher_spectral_norm(probs_model, x, verbose=False), expected,
                               rtol=1e-8)
    np.testing.assert_allclose(
        fisher_spectral_norm(probs_model, x, output_type="probabilities", verbose=False), expected,
        rtol=1e-8
    )
    # and through the class_gradient route (gradients of probabilities, divided by q).
    via_gradients = fisher_spectral_norm(ClassGradientOnly(_classifier(probs_model)), x,
                                         verbose=False)
    np.testing.assert_allclose(via_gradients, expected, rtol=1e-5)


@pytest.mark.parametrize("method", ["exact", "lanczos", "power", "auto"])
def test_methods_agree_through_the_metric_class(x, method):
    """All spectral-norm methods of FisherInformationMetric agree with the exact value."""
    classifier = _classifier(make_model("cnn"), preprocessing=(MEAN, STD))
    exact = fisher_spectral_norm(classifier, x, method="exact", verbose=False)
    metric = FisherInformationMetric(classifier, method=method,
                                     num_iter=60 if method != "power" else 3000,
                                     tol=1e-10, verbose=False, batch_size=4)
    estimate = metric.estimate(x)
    assert estimate.method == ("exact" if method == "auto" else method)
    assert estimate.converged.all() and estimate.values.shape == (6,)
    np.testing.assert_allclose(estimate.values, exact, rtol=1e-4)


def test_auto_switches_to_lanczos_when_the_jacobian_does_not_fit(x):
    """With a memory budget smaller than one Jacobian, 'auto' runs Lanczos (same values)."""
    classifier = _classifier(make_model("cnn"))
    exact = fisher_spectral_norm(classifier, x, method="exact", verbose=False)
    metric = FisherInformationMetric(classifier, memory_budget=10_000, tol=1e-10, verbose=False)
    estimate = metric.estimate(x)
    assert estimate.method == "lanczos"
    np.testing.assert_allclose(estimate.values, exact, rtol=1e-4)


class RecordingBatches(ClassGradientOnly):
    """Records the size of every batch whose class gradients are asked for."""

    def __init__(self, classifier: PyTorchClassifier) -> None:
        super().__init__(classifier)
        self.batches: list[int] = []

    def class_gradient(self, x: np.ndarray, label=None) -> np.ndarray:
        self.batches.append(len(x))
        return super().class_gradient(x, label=label)


def test_estimate_reports_the_batch_size_actually_used(x):
    """``batch_size`` is the largest batch the estimator formed: under a tight memory budget the
    planner shrinks it below ``len(x)``, with plenty of memory it is every input at once.
    """
    per_input = 2 * NUM_CLASSES * int(np.prod(IMAGE_SHAPE)) * 8  # K rows of J, twice, in float64
    sizes = {}
    for name, budget in (("small", 3 * per_input), ("roomy", None)):
        classifier = RecordingBatches(_classifier(make_model("cnn")))
        metric = FisherInformationMetric(classifier, method="exact", batch_size=64,
                                         memory_budget=budget,
                                         verbose=False)
        estimate = metric.estimate(x)
        # The scoring loop asks for the class gradients of batches of exactly that size (the
        # planner's probes and the output-type check use other sizes too).
        assert estimate.batch_size in classifier.batches
        sizes[name] = estimate
    assert sizes["small"].batch_size < len(x) == sizes["roomy"].batch_size
    np.testing.assert_allclose(sizes["small"].values, sizes["roomy"].values, rtol=1e-12)


def test_hutchinson_trace_through_the_metric_class(x):
    """The trace estimate with standard errors covers the exact trace (3 SE, fixed seed)."""
    classifier = _classifier(make_model("cnn"))
    exact = fisher_trace(classifier, x, verbose=False)
    estimate = FisherInformationMetric(classifier, method="hutchinson", num_probes=300,
                                       verbose=False).trace(x)
    assert np.all(np.abs(estimate.values - exact) <= 3 * estimate.stderr)


def test_set_params_and_summary(x):
    """set_params validates names and values; the summary reports the advertised statistics."""
    metric = FisherInformationMetric(_classifier(make_model("mlp")), verbose=False)
    metric.set_params(method="exact", batch_size=2)
    assert metric.batch_size == 2
    with pytest.raises(ValueError, match="Unknown parameter 'nb_batches'"):
        metric.set_params(nb_batches=3)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        metric.set_params(batch_size=0)
    values = metric(x)
    summary = metric.estimate(x).summary()
    assert summary["n"] == 6 and summary["median"] == pytest.approx(np.median(values))
    assert summary["mean_log10"] == pytest.approx(np.log10(values).mean())
    assert summary["q0.05"] <= summary["median"] <= summary["q0.95"]


def test_classifier_mode_is_restored(x):
    """Scoring evaluates in eval mode (as ART's predict does) and restores the user's mode."""
    net = make_model("cnn_batchnorm").train()
    classifier = _classifier(net)
    train_mode_values = fisher_spectral_norm(classifier, x, verbose=False)
    assert net.training
    np.testing.assert_allclose(train_mode_values, fisher_spectral_norm(net.eval(), x,
                                                                       verbose=False), rtol=1e-12)
