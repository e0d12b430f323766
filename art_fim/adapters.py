"""From an ART classifier (or a PyTorch module) to per-batch :class:`InputJacobian` objects.

Each adapter answers one question: given a batch ``x`` in the classifier's own input scale
(the [0, 1] pixels a user passes to ART, before any normalisation), what is the Jacobian
of the scores with respect to ``x``? Normalisation and differentiable defences are part
of the function being differentiated, exactly as in ART's own ``class_gradient``.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from art_fim.checks import OutputType, resolve_output_type
from art_fim.jacobian import AutogradJacobian, DenseJacobian, ForwardFn, InputJacobian, log_probabilities


class NotDifferentiableError(TypeError):
    """The classifier's preprocessing chain (or the classifier itself) passes no gradients."""


class ClassifierAdapter(ABC):
    """What the estimators need from a classifier.

    Attributes:
        input_shape: shape of one input, or ``None`` when unknown (a bare module).
        clip_values: ``(min, max)`` valid input range, or ``None``.
        device: where products are computed.
        output_type: declared output type (``"auto"`` to detect per batch).
    """

    input_shape: tuple[int, ...] | None
    clip_values: Any
    device: torch.device
    output_type: OutputType

    @abstractmethod
    def jacobian(self, x: np.ndarray) -> InputJacobian:
        """Return the input Jacobian of the scores for the batch ``x``."""

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """Context in which the model computes sample-independent outputs (eval mode)."""
        yield

    @property
    def itemsize(self) -> int:
        """Bytes per number in the products (for memory planning)."""
        return 4


class TorchAdapter(ClassifierAdapter):
    """A differentiable PyTorch forward function, with its module's eval-mode handling.

    Args:
        forward: maps ``[B, *input_shape]`` inputs to ``[B, K]`` scores.
        module: the network (put in eval mode while scoring, then restored).
        input_shape: shape of one input, or ``None``.
        clip_values: valid input range, or ``None``.
        device: the module's device.
        output_type: ``"auto"``, ``"logits"`` or ``"probabilities"``.
    """

    def __init__(
        self,
        forward: ForwardFn,
        module: nn.Module,
        input_shape: tuple[int, ...] | None,
        clip_values: Any,
        device: torch.device,
        output_type: OutputType = "auto",
    ) -> None:
        self.forward = forward
        self.module = module
        self.input_shape = input_shape
        self.clip_values = clip_values
        self.device = device
        self.output_type = output_type
        floating = [p.dtype for p in module.parameters() if p.is_floating_point()]
        self.dtype = floating[0] if floating else torch.get_default_dtype()

    @property
    def itemsize(self) -> int:  # noqa: D102
        return torch.finfo(self.dtype).bits // 8

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:  # noqa: D102
        # ART's own predict and class_gradient switch to eval mode the same way.
        was_training = self.module.training
        self.module.eval()
        try:
            yield
        finally:
            self.module.train(was_training)

    def jacobian(self, x: np.ndarray) -> InputJacobian:  # noqa: D102
        xt = torch.as_tensor(x, device=self.device).to(self.dtype)
        with torch.no_grad():
            scores = self.forward(xt)
        kind = resolve_output_type(scores.detach().cpu().numpy(), self.output_type)
        if kind == "logits":
            return AutogradJacobian(self.forward, xt)
        forward = self.forward
        return AutogradJacobian(lambda t: log_probabilities(forward(t)), xt)


class ClassGradientAdapter(ClassifierAdapter):
    """Any ART classifier with ``class_gradient`` (TensorFlow, Keras, JAX, ...): exact route only.

    The Jacobian is materialised as ``[B, K, d]`` from ``K`` calls of
    ``class_gradient(x, label=k)``. Per-label calls are used on purpose: ART's
    ``TensorFlowV2Classifier.class_gradient(label=None)`` differentiates with respect to the
    *preprocessed* input and so misses the normalisation's chain-rule factor, while the
    per-label path is correct in every framework.
    """

    def __init__(self, classifier: Any, output_type: OutputType = "auto") -> None:
        self.classifier = classifier
        self.input_shape = tuple(classifier.input_shape)
        self.clip_values = classifier.clip_values
        self.device = torch.device("cpu")
        self.output_type = output_type

    @property
    def itemsize(self) -> int:  # noqa: D102
        return 8

    def jacobian(self, x: np.ndarray) -> InputJacobian:  # noqa: D102
        scores = np.asarray(self.classifier.predict(x, batch_size=len(x)), dtype=np.float64)
        kind = resolve_output_type(scores, self.output_type)
        rows = [self.classifier.class_gradient(x, label=k) for k in range(scores.shape[1])]
        jac = torch.from_numpy(np.concatenate(rows, axis=1).astype(np.float64))
        scores_t = torch.from_numpy(scores)
        if kind == "probabilities":
            # ∇ log q_k = ∇q_k / q_k (q floored as in the logarithm), and softmax(log q) = q.
            scores_t = log_probabilities(scores_t)
            q = scores_t.exp()
            jac = jac / q.reshape(*q.shape, *([1] * (jac.ndim - 2)))
        return DenseJacobian(jac, scores_t)


def _module_device(module: nn.Module) -> torch.device:
    for tensor in module.parameters():
        return tensor.device
    return torch.device("cpu")


def adapter_for(classifier: Any, output_type: OutputType = "auto") -> ClassifierAdapter:
    """Choose the white-box adapter for a classifier.

    Args:
        classifier: an ART ``PyTorchClassifier``, any ART classifier with
            ``class_gradient``, or a ``torch.nn.Module`` in eval mode.
        output_type: ``"auto"``, ``"logits"`` or ``"probabilities"``.

    Returns:
        The adapter.

    Raises:
        NotDifferentiableError: the preprocessing chain passes no gradients, or the
            classifier has no gradients at all (use ``method="blackbox"``).
        ValueError: a bare module in training mode.
    """
    from art.estimators.classification import PyTorchClassifier

    if isinstance(classifier, PyTorchClassifier):
        if not classifier.all_framework_preprocessing:
            names = ", ".join(type(p).__name__ for p in classifier.preprocessing_operations)
            raise NotDifferentiableError(
                f"The classifier's preprocessing chain ({names}) contains non-PyTorch steps that "
                "gradients cannot pass. Use PyTorch preprocessing (e.g. preprocessing=(mean, std) "
                "and PreprocessorPyTorch defences), or the query-only route: method='blackbox'."
            )
        module = classifier.model

        def forward(t: torch.Tensor) -> torch.Tensor:
            t, _ = classifier._apply_preprocessing(t, None, fit=False, no_grad=False)
            return module(t)

        return TorchAdapter(
            forward,
            module,
            tuple(classifier.input_shape),
            classifier.clip_values,
            torch.device(classifier.device),
            output_type,
        )
    if isinstance(classifier, nn.Module):
        if classifier.training:
            raise ValueError(
                "The model is in training mode, where batch normalisation and dropout make each "
                "output depend on the rest of the batch (or on chance). Call model.eval() first."
            )
        return TorchAdapter(
            classifier, classifier, None, None, _module_device(classifier), output_type
        )
    if callable(getattr(classifier, "class_gradient", None)):
        return ClassGradientAdapter(classifier, output_type)
    raise NotDifferentiableError(
        f"{type(classifier).__name__} exposes no input gradients (no class_gradient); "
        "use the query-only estimator: method='blackbox'."
    )
