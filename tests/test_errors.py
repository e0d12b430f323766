"""Every bad input of SPEC "Conventions" gets an error that says what to do."""

from __future__ import annotations

import numpy as np
import pytest
from art.defences.preprocessor import SpatialSmoothing
from art.estimators.classification import PyTorchClassifier
from torch import nn

from art_fim import LabelOnlyOutputError, NotDifferentiableError, fisher_spectral_norm
from cases import IMAGE_SHAPE, NUM_CLASSES, make_model


def _classifier(model: nn.Module | None = None, **kwargs) -> PyTorchClassifier:
    return PyTorchClassifier(
        model=model if model is not None else make_model("cnn"), loss=nn.CrossEntropyLoss(),
        input_shape=IMAGE_SHAPE, nb_classes=NUM_CLASSES, clip_values=(0.0, 1.0), device_type="cpu",
        **kwargs,
    )


def _x(n: int = 3) -> np.ndarray:
    return np.random.default_rng(0).random((n, *IMAGE_SHAPE))


def test_nan_input():
    x = _x()
    x[1, 0, 2, 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN or inf in 1 input\(s\) \(first at index 1\)"):
        fisher_spectral_norm(_classifier(), x, verbose=False)


def test_inf_input():
    x = _x()
    x[2, 1, 0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        fisher_spectral_norm(_classifier(), x, verbose=False)


def test_wrong_shape():
    with pytest.raises(ValueError, match=r"expects \[N, 3, 8, 8\].*channel order"):
        fisher_spectral_norm(_classifier(), _x().transpose(0, 2, 3, 1), verbose=False)


def test_missing_batch_axis():
    with pytest.raises(ValueError, match=r"without a batch axis; pass x\[None\]"):
        fisher_spectral_norm(_classifier(), _x()[0], verbose=False)


def test_integer_dtype():
    with pytest.raises(TypeError, match=r"dtype uint8.*astype\(np.float32\) / 255"):
        fisher_spectral_norm(_classifier(), (_x() * 255).astype(np.uint8), verbose=False)


def test_values_outside_clip_values():
    with pytest.raises(
        ValueError, match=r"outside the classifier's clip_values \[0, 1\].*divided by 255"
    ):
        fisher_spectral_norm(_classifier(), _x() * 255.0, verbose=False)


def test_model_in_training_mode():
    with pytest.raises(ValueError, match=r"training mode.*Call model.eval\(\) first"):
        fisher_spectral_norm(make_model("cnn_batchnorm").train(), _x(), verbose=False)


class _OneHot(nn.Module):
    """Returns one-hot labels: argmax of a network, as a label-only API would."""

    def __init__(self) -> None:
        super().__init__()
        self.net = make_model("mlp")

    def forward(self, x):
        return nn.functional.one_hot(self.net(x).argmax(-1), NUM_CLASSES).to(x.dtype)


def test_label_only_outputs():
    with pytest.raises(LabelOnlyOutputError, match="one-hot labels, not scores"):
        fisher_spectral_norm(_OneHot().eval(), _x(), verbose=False)


def test_probabilities_declared_as_logits():
    probs = nn.Sequential(make_model("mlp"), nn.Softmax(dim=-1)).eval()
    with pytest.raises(ValueError, match="output_type='logits' was declared but the outputs are "
                       "probabilities"):
        fisher_spectral_norm(probs, _x(), output_type="logits", verbose=False)


def test_logits_declared_as_probabilities():
    with pytest.raises(ValueError, match="declared but the outputs are not "
                       "probabilities.*output_type='logits'"):
        fisher_spectral_norm(make_model("mlp"), _x(), output_type="probabilities", verbose=False)


def test_non_differentiable_preprocessing_chain():
    classifier = _classifier(
        preprocessing_defences=[SpatialSmoothing(window_size=3)], preprocessing=(0.5, 0.25)
    )
    with pytest.raises(NotDifferentiableError, match=r"SpatialSmoothing.*method='blackbox'"):
        fisher_spectral_norm(classifier, _x(), verbose=False)


def test_no_gradients_at_all():
    with pytest.raises(NotDifferentiableError, match="no class_gradient.*method='blackbox'"):
        fisher_spectral_norm(object(), _x(), verbose=False)


def test_unknown_method_and_wrong_quantity():
    with pytest.raises(ValueError, match="method must be one of"):
        fisher_spectral_norm(_classifier(), _x(), method="clever", verbose=False)
    with pytest.raises(ValueError, match="does not estimate the spectral_norm"):
        fisher_spectral_norm(_classifier(), _x(), method="hutchinson", verbose=False)
