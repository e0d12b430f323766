"""From an ART classifier (or a PyTorch module) to per-batch :class:`InputJacobian` objects.

Each adapter answers one question: given a batch ``x`` in the classifier's own input scale
(the [0, 1] pixels a user passes to ART, before any normalisation), what is the Jacobian
of the scores with respect to ``x``? Normalisation and differentiable defences are part
of the function being differentiated, exactly as in ART's own ``class_gradient``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from art_fim.checks import OutputType, output_eps, resolve_output_type
from art_fim.defences import check_defences, check_repeatable
from art_fim.hutchinson import fisher_quadratic_form
from art_fim.jacobian import AutogradJacobian, DenseJacobian, ForwardFn, InputJacobian
from art_fim.logits import as_logits
from art_fim.triton_guard import keep_triton_out_beside_tensorflow

logger = logging.getLogger(__name__)

Kind = Literal["logits", "probabilities"]

# Median relative disagreement (in the Fisher's own seminorm) above which an interpretation
# of ``class_gradient`` is rejected: float32 differences agree to about 1e-4, a wrong
# interpretation is off by a factor p or 1/p or a normalisation's 1/std.
_INTERPRETATION_TOLERANCE = 0.1
# Inputs of the first batch on which it is checked (two random directions each).
_INTERPRETATION_INPUTS = 8


class NotDifferentiableError(TypeError):
    """The classifier's preprocessing chain (or the classifier itself) passes no gradients."""


class ClassGradientMismatchError(ValueError):
    """``class_gradient`` differentiates nothing that ``predict`` returns."""


@contextlib.contextmanager
def evaluation_mode(module: nn.Module | None) -> Iterator[None]:
    """Put every submodule in eval mode, and give each back its mode and its parameters' flags.

    ``module.train(was_training)`` would not do: it sets every submodule alike, losing a
    user's mixed state (a frozen BatchNorm inside a training network). Nor is setting the
    ``training`` flags back enough: a model whose own ``train()`` override freezes or unfreezes
    its parameters has them toggled by ``eval()``, so every parameter's ``requires_grad`` is
    given back too.
    """
    if module is None:
        yield
        return
    modes = [(m, m.training) for m in module.modules()]
    flags = [(p, p.requires_grad) for p in module.parameters()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training
        for p, requires_grad in flags:
            p.requires_grad_(requires_grad)


def torch_module(classifier: Any) -> nn.Module | None:
    """The PyTorch module behind a classifier (the user's network for a ``PyTorchClassifier``)."""
    if isinstance(classifier, nn.Module):
        return classifier
    model = getattr(classifier, "model", None)
    return model if isinstance(model, nn.Module) else None


class ClassifierAdapter(ABC):
    """What the estimators need from a classifier.

    The output type is decided once per adapter, on the first batch, and every later batch
    is checked against it: a model's outputs are either logits or probabilities.

    Attributes:
        input_shape: shape of one input, or ``None`` when unknown (a bare module).
        clip_values: ``(min, max)`` valid input range, or ``None``.
        device: where products are computed.
        output_type: declared output type (``"auto"`` to detect on the first batch).
    """

    input_shape: tuple[int, ...] | None
    clip_values: Any
    device: torch.device
    output_type: OutputType
    _kind: Kind | None = None

    @abstractmethod
    def jacobian(self, x: np.ndarray, class_chunk: int | None = None) -> InputJacobian:
        """Return the input Jacobian of the scores for the batch ``x``.

        Args:
            x: the batch.
            class_chunk: classes per batched backward pass when the rows are formed (see
                :class:`~art_fim.jacobian.AutogradJacobian`); ignored by dense Jacobians.
        """

    @abstractmethod
    def outputs(self, x: np.ndarray) -> np.ndarray | Tensor:
        """Return the model's raw outputs on the batch ``x``, ``[B, K]``."""

    def decide_output_type(self, x: np.ndarray) -> Kind:
        """Decide the output type from the outputs on ``x`` (a whole first batch, not one input)."""
        return self._resolve(self.outputs(x))

    def activation_bytes(self, x: np.ndarray) -> int:
        """Bytes the forward graph of the batch ``x`` keeps for the backward pass (0 if unknown)."""
        return 0

    @property
    def itemsize(self) -> int:
        """Bytes per number in the products (for memory planning)."""
        return 4

    def _resolve(self, raw: np.ndarray | Tensor) -> Kind:
        """The output type: declared, or detected on the first batch and checked on the rest."""
        detected = self._kind is not None and self.output_type == "auto"
        self._kind = resolve_output_type(raw, self._kind or self.output_type, detected=detected)
        return self._kind


class TorchAdapter(ClassifierAdapter):
    """A differentiable PyTorch forward function, with its module's eval-mode handling.

    Args:
        forward: maps ``[B, *input_shape]`` inputs to ``[B, K]`` scores.
        module: the network (its parameters give the dtype; its graph is measured).
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
    def itemsize(self) -> int:  # noqa: D102 - documented in the base class
        return torch.finfo(self.dtype).bits // 8

    def _as_tensor(self, x: np.ndarray | Tensor) -> Tensor:
        return torch.as_tensor(x, device=self.device).to(self.dtype)

    def outputs(self, x: np.ndarray | Tensor) -> Tensor:  # noqa: D102 - documented in the base class
        with torch.no_grad():
            return self.forward(self._as_tensor(x))

    def jacobian(self, x: np.ndarray, class_chunk: int | None = None) -> InputJacobian:  # noqa: D102 - documented in the base class
        xt = self._as_tensor(x)
        forward = self.forward
        raw = self.outputs(xt)
        kind = self._resolve(raw)
        jac = AutogradJacobian(lambda t: as_logits(forward(t), kind), xt, class_chunk=class_chunk)
        # The graph's forward pass is a second evaluation of the batch: a random model shows.
        name = type(self.module).__name__
        check_repeatable(as_logits(raw, kind), jac.logits, output_eps(raw), name)
        return jac

    def activation_bytes(self, x: np.ndarray) -> int:
        """Bytes of the tensors autograd saves in one forward pass of ``x`` (parameters excluded).

        Measured with ``torch.autograd.graph.saved_tensors_hooks``; this is the memory the
        graph holds while products are taken, and a batched backward over ``c`` cotangents
        holds gradient buffers of about ``c`` times that size.
        """
        xt = self._as_tensor(x).requires_grad_(True)
        tensors = itertools.chain(self.module.parameters(), self.module.buffers())
        owned = {t.untyped_storage().data_ptr() for t in tensors}
        saved: dict[int, int] = {}

        def pack(t: Tensor) -> Tensor:
            storage = t.untyped_storage()
            if storage.data_ptr() not in owned:
                saved[storage.data_ptr()] = storage.nbytes()
            return t

        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = self.forward(xt)
        saved[out.untyped_storage().data_ptr()] = out.untyped_storage().nbytes()
        return int(sum(saved.values()))


def _score_map_jacobian(raw: Tensor, kind: Kind) -> Tensor:
    """``∂ as_logits / ∂ raw`` per sample, ``[B, K] -> [B, max(K, 2), K]``.

    ``as_logits`` maps each sample's row on its own, so the gradient of one logit column
    summed over the batch holds that column's derivative for every sample: ``max(K, 2)``
    backward passes through a few elementwise operations.

    Plain reverse-mode autograd, not ``torch.func``, on purpose: this is the route of
    TensorFlow, Keras and other non-PyTorch classifiers, and ``torch.func``'s reverse mode
    (``vjp``, ``jacrev``) imports ``torch._dynamo`` on first use, which loads Triton, which
    crashes a process where TensorFlow is already loaded (:mod:`art_fim.triton_guard`).
    ``torch.autograd.grad`` loads neither, so this route needs no guard.
    """
    leaf = raw.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = as_logits(leaf, kind)
        columns = [
            torch.autograd.grad(logits[:, k].sum(), leaf, retain_graph=True)[0]
            for k in range(logits.shape[1])
        ]
    return torch.stack(columns, dim=1)


# What ART's ``class_gradient`` may differentiate, and how each turns into the Jacobian of the
# scores (``G``: ``[B, K, d]`` class gradients, ``raw``: ``[B, K]`` outputs of predict).
Interpretation = Callable[[Tensor, Tensor, Kind], Tensor]


def _of_outputs(grads: Tensor, raw: Tensor, kind: Kind) -> Tensor:
    return _score_map_jacobian(raw, kind) @ grads


def _of_log_outputs(grads: Tensor, raw: Tensor, kind: Kind) -> Tensor:
    # ∇ raw = raw ⊙ ∇ log raw. For probability outputs this also covers the logits behind
    # them: they differ from log q by a common shift, which M = diag(p) − ppᵀ annihilates.
    return _score_map_jacobian(raw, kind) @ (raw[..., None] * grads)


def _of_softmax(grads: Tensor, raw: Tensor, kind: Kind) -> Tensor:
    return grads / torch.softmax(raw, dim=-1)[..., None]


class ClassGradientAdapter(ClassifierAdapter):
    """Any ART classifier with ``class_gradient`` (TensorFlow, Keras, scikit-learn): exact only.

    The Jacobian is materialised as ``[B, K, d]`` from ``K`` calls of
    ``class_gradient(x, label=k)``. Per-label calls are used on purpose: ART's
    ``TensorFlowV2Classifier.class_gradient(label=None)`` differentiates with respect to the
    *preprocessed* input and so misses the normalisation's chain-rule factor, while the
    per-label path is correct in every framework.

    What ``class_gradient`` differentiates differs between ART's estimators: the outputs
    (PyTorch, TensorFlow, Keras, scikit-learn's binary logistic regression), their logarithm
    (scikit-learn's multinomial logistic regression returns ``∇ log p_k`` beside
    probabilities), or softmax probabilities of logit outputs. It is not assumed: on the first
    batch, each interpretation's directional derivatives ``J v`` are compared with central
    differences of ``predict`` along two random directions per input, in the Fisher's own
    seminorm ``‖u‖_M = √(uᵀ M u)``, and the one that matches is kept for every batch. If none
    matches (gradients of the preprocessed input, a non-smooth or random model), the adapter
    refuses. The check runs on the first batch's first 8 inputs.
    """

    INTERPRETATIONS: dict[str, Interpretation] = {
        "the outputs": _of_outputs,
        "the logarithm of the outputs (or the logits behind probability outputs)": _of_log_outputs,
        "the softmax probabilities of logit outputs": _of_softmax,
    }

    def __init__(self, classifier: Any, output_type: OutputType = "auto") -> None:
        """Wrap ``classifier``; ``output_type``: ``"auto"``, ``"logits"`` or ``"probabilities"``."""
        self.classifier = classifier
        self.input_shape = tuple(classifier.input_shape)
        self.clip_values = classifier.clip_values
        self.device = torch.device("cpu")
        self.output_type = output_type
        self.interpretation: str | None = None

    @property
    def itemsize(self) -> int:
        """Bytes per Jacobian entry at the peak: float64, held about four times over.

        ``class_gradient``'s arrays, their concatenation, the tensor and the interpretation's
        product of it.
        """
        return 4 * 8

    def outputs(self, x: np.ndarray) -> np.ndarray:  # noqa: D102 - documented in the base class
        return np.asarray(self.classifier.predict(x, batch_size=len(x)))

    def decide_output_type(self, x: np.ndarray) -> Kind:
        """Decide the output type on ``x``.

        Also decide, on ``x[:8]``, what ``class_gradient`` differentiates.
        """
        raw = self.outputs(x)
        kind = self._resolve(raw)
        if self.interpretation is None:
            n = _INTERPRETATION_INPUTS
            grads = self._class_gradients(x[:n], raw.shape[1])
            self.interpretation = self._establish(x[:n], raw[:n], kind, grads)
        return kind

    def _class_gradients(self, x: np.ndarray, classes: int) -> Tensor:
        """``[B, K, d]`` float64, from one ``class_gradient(x, label=k)`` call per class."""
        rows = [np.asarray(self.classifier.class_gradient(x, label=k)) for k in range(classes)]
        grads = torch.from_numpy(np.concatenate(rows, axis=1).astype(np.float64))
        return grads.reshape(len(x), classes, -1)

    def jacobian(self, x: np.ndarray, class_chunk: int | None = None) -> InputJacobian:  # noqa: D102 - documented in the base class
        raw = self.outputs(x)
        kind = self._resolve(raw)
        grads = self._class_gradients(x, raw.shape[1])
        raw_t = torch.from_numpy(raw.astype(np.float64))
        if self.interpretation is None:
            self.interpretation = self._establish(x, raw, kind, grads)
        jac = self.INTERPRETATIONS[self.interpretation](grads, raw_t, kind)
        return DenseJacobian(jac.reshape(len(x), -1, *x.shape[1:]), as_logits(raw_t, kind))

    def _establish(self, x: np.ndarray, raw: np.ndarray, kind: Kind, grads: Tensor) -> str:
        """Pick the interpretation of ``class_gradient`` that matches differences of ``predict``."""
        from art_fim.finite_differences import FiniteDifferenceJacobian

        name = type(self.classifier).__name__
        fd = FiniteDifferenceJacobian(
            self.outputs, x, output_type=kind, clip_values=self.clip_values
        )
        raw_t = torch.from_numpy(raw.astype(np.float64))
        check_repeatable(as_logits(raw_t, kind), fd.logits, output_eps(raw), name)
        directions = np.random.default_rng(0).standard_normal((len(x), 2, grads.shape[-1]))
        differences = torch.from_numpy(fd.directional_derivatives(directions))
        p, v = fd.probs, torch.from_numpy(directions)
        errors: dict[str, float] = {}
        for label, interpretation in self.INTERPRETATIONS.items():
            if label.startswith("the logarithm") and not (raw >= 0).all():
                continue
            if label.startswith("the softmax") and (kind != "logits" or raw.shape[1] < 2):
                continue
            jv = torch.einsum("bkd,bmd->bmk", interpretation(grads, raw_t, kind), v)
            gap = _seminorm(jv - differences, p)
            scale = torch.maximum(_seminorm(jv, p), _seminorm(differences, p))
            relative = torch.where(scale > 0, gap / scale.clamp_min(1e-300), 0.0)
            errors[label] = float(relative.median())
        best = min(errors, key=errors.get)
        summary = ", ".join(f"{label}: {err:.1%}" for label, err in errors.items())
        if errors[best] > _INTERPRETATION_TOLERANCE:
            raise ClassGradientMismatchError(
                f"{name}.class_gradient matches no derivative of its predict outputs: along "
                "random directions its products differ from central differences of predict by "
                f"({summary}; median over the first batch). It may differentiate the preprocessed "
                "input, or the model may be random or non-smooth. Use method='blackbox', which "
                "needs only predict."
            )
        logger.info("%s.class_gradient differentiates %s (%s)", name, best, summary)
        return best


def _seminorm(u: Tensor, p: Tensor) -> Tensor:
    """``√(uᵀ M u)`` with ``M = diag(p) − ppᵀ``: ``[B, m, K], [B, K] -> [B, m]``."""
    return fisher_quadratic_form(u, p[:, None, :]).clamp_min(0.0).sqrt()


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
        UnsupportedDefenceError: a defence the white-box route cannot score (see
            :mod:`art_fim.defences`).
        ValueError: a bare module in training mode.
    """
    from art.estimators.classification import PyTorchClassifier

    check_defences(classifier, "whitebox")
    if isinstance(classifier, (PyTorchClassifier, nn.Module)):
        # Products through a PyTorch model may load torch._dynamo (and with it Triton).
        keep_triton_out_beside_tensorflow()
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
