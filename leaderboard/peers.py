r"""Attack-free scores a user would reach for instead of the input-Fisher metric ("peers").

Each is computed per image on the images the Fisher pass scores, reduced to one number per model
and timed on its own pass:

* **GREAT Score** (Li, Chen, Ho, NeurIPS 2024, https://arxiv.org/abs/2304.09875), through ART's
  own ``art.evaluations.great_score.GreatScorePyTorch``, not re-implemented. GREAT Score is
  defined on probabilities, and ART's class takes the gap of whatever ``predict`` returns with
  one-hot labels, so it is given a softmax view of the model (a ``PyTorchClassifier`` whose
  ``predict`` returns ``softmax(z(x))``) and one-hot labels. Per image,

  .. math::  g(x) = \max\{p_y(x) − \max_{k≠y} p_k(x),\ 0\}

  (the top-1 minus top-2 probability where the prediction is correct, 0 where it is not); the
  model's score is ART's mean of ``g`` over all images. The paper's local score carries a
  further constant factor ``√(π/2)`` (its ℓ2 certified radius of the Gaussian-smoothed model),
  which ART omits and which changes no rank, correlation or isotonic fit. Larger = more robust.
  The paper samples its inputs from a generative model; here they are the test images.
* **Logit margin**, the proxy of margin consistency (Ngnawé et al., NeurIPS 2024,
  https://arxiv.org/abs/2406.18451): per image the signed margin

  .. math::  m(x) = z_y(x) − \max_{k≠y} z_k(x),

  which is the top-1 minus top-2 logit where the prediction is correct and negative where it is
  wrong (minus how far the true class is behind). The model's score is the **median over all
  images**: a misclassified image counts as non-robust (below every correct one), as it does in
  robust accuracy, instead of being dropped (a mean over correct images would rank a model with
  few, confident correct images above a more accurate one); the median is robust to the
  unbounded right tail of confident logits, which would dominate a mean. It is not invariant to
  rescaling the logits (a temperature scales it; no attack's accuracy changes). Larger = more
  robust.
* **Input-gradient norm of the loss** in the threat's dual norm (ℓ1 for an ℓ∞ threat, ℓ2 for ℓ2),
  one backward pass: per image ``‖∇_x CE(z(x), y)‖_{q*}``, the first-order increase of the loss
  per unit of budget, ``CE(x + δ) ≈ CE(x) + ε ‖∇_x CE‖_{q*}`` for the worst ``‖δ‖_q ≤ ε``. The
  model's score is the median over all images (the misclassified ones' large gradients would
  dominate a mean). **Larger = less robust** (like ``λ_max``): expect negative correlations
  with AutoAttack accuracy.

The interface: :func:`peer_scores` (all three) or :func:`great_score`, :func:`logit_margin`,
:func:`gradient_norm`, each taking a ``torch.nn.Module`` on ``[0, 1]`` inputs (in eval mode) or
an ART ``PyTorchClassifier`` (its preprocessing applied, as ART does), float inputs
``x`` ``[N, C, H, W]`` and labels ``y`` (indices or one-hot), and returning a :class:`PeerScore`
with the per-image values, the model's scalar, its direction, its seconds and a provenance dict.
"""

from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from art_fim.adapters import TorchAdapter, adapter_for, evaluation_mode
from art_fim.checks import check_inputs, check_labels
from art_fim.margins import margins
from art_fim.norms import dual_norm, norm_name, parse_norm

GREAT_SCORE_PAPER = "https://arxiv.org/abs/2304.09875"
MARGIN_CONSISTENCY_PAPER = "https://arxiv.org/abs/2406.18451"
PEERS = ("great_score", "logit_margin", "gradient_norm")


@dataclass(frozen=True)
class PeerScore:
    """One peer score of one model on a set of images.

    Attributes:
        name: ``"great_score"``, ``"logit_margin"`` or ``"gradient_norm"``.
        values: float64 per-image values ``[N]``.
        score: the model-level scalar (the aggregate of ``values`` named in ``provenance``).
        higher_is_robust: whether a larger ``score`` means a more robust model.
        seconds: wall time of the pass that computed the values (model forward, and backward
            for the gradient norm, included; input checks and bookkeeping not).
        provenance: library and version, settings and the aggregate, for a result file.
    """

    name: str
    values: np.ndarray
    score: float
    higher_is_robust: bool
    seconds: float
    provenance: dict[str, Any]

    @property
    def seconds_per_image(self) -> float:
        """Wall time per image."""
        return self.seconds / max(len(self.values), 1)

    def to_json(self) -> dict[str, Any]:
        """The JSON block of a result (the per-image values go to the per-image arrays)."""
        return {"score": self.score, "higher_is_robust": self.higher_is_robust,
                "n": int(len(self.values)), "seconds": self.seconds,
                "seconds_per_image": self.seconds_per_image, "provenance": self.provenance}


def _adapter(classifier: Any) -> TorchAdapter:
    """The differentiable ``[0, 1]``-input to logits forward of a module or PyTorchClassifier."""
    adapter = adapter_for(classifier, output_type="logits")
    if not isinstance(adapter, TorchAdapter):
        raise TypeError(
            f"peer scores need a torch.nn.Module or an ART PyTorchClassifier, got "
            f"{type(classifier).__name__}"
        )
    return adapter


def _prepare(classifier: Any, x: np.ndarray, y: Any) -> tuple[TorchAdapter, np.ndarray,
                                                                 np.ndarray]:
    adapter = _adapter(classifier)
    x = check_inputs(x, adapter.input_shape, adapter.clip_values)
    return adapter, x, check_labels(y, len(x))


def _batches(adapter: TorchAdapter, x: np.ndarray, y: np.ndarray,
             batch_size: int) -> list[tuple[Tensor, Tensor]]:
    return [(torch.as_tensor(x[i:i + batch_size], device=adapter.device).to(adapter.dtype),
             torch.as_tensor(y[i:i + batch_size], device=adapter.device))
            for i in range(0, len(x), batch_size)]


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _common(adapter: TorchAdapter, batch_size: int) -> dict[str, Any]:
    return {"torch": torch.__version__, "device": str(adapter.device),
            "precision": str(adapter.dtype).removeprefix("torch."), "batch_size": batch_size,
            "python": platform.python_version()}


class _SoftmaxOutput(nn.Module):
    """``softmax(forward(x))``: the probabilities GREAT Score is defined on."""

    def __init__(self, adapter: TorchAdapter) -> None:
        super().__init__()
        self.network = adapter.module  # registered, so ART moves it and sets its mode
        self._forward = adapter.forward

    def forward(self, x: Tensor) -> Tensor:
        return torch.softmax(self._forward(x), dim=-1)


class _Recording:
    """Passes ``predict`` through to an ART classifier, at a batch size, and keeps its output."""

    def __init__(self, classifier: Any, batch_size: int) -> None:
        self.classifier = classifier
        self.batch_size = batch_size
        self.outputs: np.ndarray | None = None

    def predict(self, x: np.ndarray, **kwargs: Any) -> np.ndarray:
        self.outputs = self.classifier.predict(x, batch_size=self.batch_size, **kwargs)
        return self.outputs


class _Given:
    """A 'classifier' whose predictions are its inputs: ART's formula on given outputs."""

    @staticmethod
    def predict(x: np.ndarray, **kwargs: Any) -> np.ndarray:
        return x


def softmax_view(classifier: Any, input_shape: tuple[int, ...], nb_classes: int) -> Any:
    """An ART ``PyTorchClassifier`` whose ``predict`` returns the model's softmax probabilities.

    Args:
        classifier: a ``torch.nn.Module`` on ``[0, 1]`` inputs or an ART ``PyTorchClassifier``
            (its preprocessing is inside the view's model, so the view has none of its own).
        input_shape: shape of one input.
        nb_classes: number of classes.

    Returns:
        The view, on the classifier's device, clip values ``[0, 1]`` unless the classifier
        declares others.
    """
    from art.estimators.classification import PyTorchClassifier

    adapter = _adapter(classifier)
    clip = adapter.clip_values if adapter.clip_values is not None else (0.0, 1.0)
    # ART requires a loss; only predict is ever called on the view, so none is evaluated.
    return PyTorchClassifier(
        model=_SoftmaxOutput(adapter), loss=nn.NLLLoss(), input_shape=tuple(input_shape),
        nb_classes=nb_classes, clip_values=clip,
        device_type="gpu" if adapter.device.type == "cuda" else "cpu",
    )


def great_score(classifier: Any, x: np.ndarray, y: Any, *, batch_size: int = 128) -> PeerScore:
    """GREAT Score through ART's ``GreatScorePyTorch`` on the softmax view of the model.

    The model-level score is ART's return value. The per-image values are ART's formula too:
    ``GreatScorePyTorch`` evaluated image by image on the probabilities the one timed call
    predicted (a 'classifier' that returns them as given), so no formula of this module sits
    between ART and the numbers; their mean is ART's score.

    Args:
        classifier: ``torch.nn.Module`` on ``[0, 1]`` inputs (eval mode) or ART
            ``PyTorchClassifier``.
        x: float inputs ``[N, C, H, W]`` in the classifier's input scale.
        y: labels ``[N]`` (indices) or ``[N, K]`` (one-hot).
        batch_size: ``predict``'s batch size.

    Returns:
        The :class:`PeerScore` (larger = more robust).
    """
    import art
    from art.evaluations.great_score import GreatScorePyTorch

    adapter, x, labels = _prepare(classifier, x, y)
    with evaluation_mode(adapter.module):
        num_classes = int(adapter.outputs(x[:1]).shape[-1])
        view = softmax_view(classifier, x.shape[1:], num_classes)
        recording = _Recording(view, batch_size)  # GreatScorePyTorch passes no batch size
        one_hot = np.eye(num_classes, dtype=np.float32)[labels]
        start = time.perf_counter()
        score, accuracy = GreatScorePyTorch(recording).evaluate(x, one_hot)
        seconds = time.perf_counter() - start
    given = GreatScorePyTorch(_Given())
    values = np.array([given.evaluate(p[None], t[None])[0]
                       for p, t in zip(recording.outputs, one_hot)], dtype=np.float64)
    return PeerScore(
        "great_score", values, float(score), True, seconds,
        {"library": "adversarial-robustness-toolbox", "version": art.__version__,
         "class": "art.evaluations.great_score.GreatScorePyTorch",
         "model_output": "softmax probabilities (PyTorchClassifier view of softmax(logits))",
         "labels": "one-hot",
         "aggregate": "ART's: mean over all images of the top-1 minus top-2 probability where "
                      "the prediction is correct, 0 where it is not (without the paper's "
                      "sqrt(pi/2) factor)",
         "accuracy": float(accuracy), "paper": GREAT_SCORE_PAPER, **_common(adapter, batch_size)},
    )


def signed_margins(logits: Tensor, labels: Tensor) -> Tensor:
    """Return ``z_y − max_{k≠y} z_k`` per row, float64 ``[B]`` (negative where misclassified)."""
    gaps = margins(logits, labels)
    gaps.scatter_(1, labels[:, None], math.inf)  # z_y − z_y = 0 is not a competitor
    return gaps.amin(1)


def logit_margin(classifier: Any, x: np.ndarray, y: Any, *, batch_size: int = 128) -> PeerScore:
    """The signed logit margin per image and its median over all images.

    Args:
        classifier: ``torch.nn.Module`` on ``[0, 1]`` inputs (eval mode) or ART
            ``PyTorchClassifier``.
        x: float inputs ``[N, C, H, W]`` in the classifier's input scale.
        y: labels ``[N]`` (indices) or ``[N, K]`` (one-hot).
        batch_size: forward batch size.

    Returns:
        The :class:`PeerScore` (larger = more robust).
    """
    adapter, x, labels = _prepare(classifier, x, y)
    with evaluation_mode(adapter.module):
        batches = _batches(adapter, x, labels, batch_size)
        start = time.perf_counter()
        with torch.no_grad():
            values = torch.cat([signed_margins(adapter.forward(xb), yb) for xb, yb in batches])
        _synchronize(adapter.device)
        seconds = time.perf_counter() - start
    values = values.cpu().numpy()
    return PeerScore(
        "logit_margin", values, float(np.median(values)), True, seconds,
        {"library": "leaderboard.peers", "quantity": "z_y - max_{k != y} z_k (logits)",
         "aggregate": "median over all images (misclassified ones negative)",
         "paper": MARGIN_CONSISTENCY_PAPER, **_common(adapter, batch_size)},
    )


def gradient_norm(classifier: Any, x: np.ndarray, y: Any, *, threat_model: Any,
                  batch_size: int = 128) -> PeerScore:
    """``‖∇_x CE(z(x), y)‖`` in the threat's dual norm per image, and its median.

    One backward pass per batch of the summed cross-entropy: in eval mode each image's loss
    depends on its own input only, so the gradient's rows are the per-image gradients.

    Args:
        classifier: ``torch.nn.Module`` on ``[0, 1]`` inputs (eval mode) or ART
            ``PyTorchClassifier``.
        x: float inputs ``[N, C, H, W]`` in the classifier's input scale.
        y: labels ``[N]`` (indices) or ``[N, K]`` (one-hot).
        threat_model: ``"Linf"`` (ℓ1 gradient norm) or ``"L2"`` (ℓ2), or ``np.inf`` / ``2``.
        batch_size: batch size of the forward and backward passes.

    Returns:
        The :class:`PeerScore` (larger = **less** robust).
    """
    norm = parse_norm(threat_model)
    adapter, x, labels = _prepare(classifier, x, y)
    with evaluation_mode(adapter.module):
        batches = _batches(adapter, x, labels, batch_size)
        start = time.perf_counter()
        norms = []
        for xb, yb in batches:
            xb = xb.requires_grad_(True)
            with torch.enable_grad():
                loss = nn.functional.cross_entropy(adapter.forward(xb), yb, reduction="sum")
                (grad,) = torch.autograd.grad(loss, xb)
            norms.append(dual_norm(grad.flatten(1).double(), norm))
        _synchronize(adapter.device)
        seconds = time.perf_counter() - start
    values = torch.cat(norms).cpu().numpy()
    dual = {"linf": "l1", "l2": "l2", "l1": "linf"}[norm_name(norm)]
    return PeerScore(
        "gradient_norm", values, float(np.median(values)), False, seconds,
        {"library": "leaderboard.peers", "loss": "cross-entropy of the logits",
         "threat_norm": norm_name(norm), "gradient_norm": dual,
         "aggregate": "median over all images", **_common(adapter, batch_size)},
    )


def peer_scores(classifier: Any, x: np.ndarray, y: Any, *, threat_model: Any,
                batch_size: int = 128) -> dict[str, PeerScore]:
    """All three peer scores of one model at one threat model, keyed as :data:`PEERS`.

    GREAT Score and the logit margin do not depend on the threat model; the gradient norm's
    dual norm does.

    Args:
        classifier: ``torch.nn.Module`` on ``[0, 1]`` inputs (eval mode) or ART
            ``PyTorchClassifier``.
        x: float inputs ``[N, C, H, W]`` in the classifier's input scale.
        y: labels ``[N]`` (indices) or ``[N, K]`` (one-hot).
        threat_model: ``"Linf"`` or ``"L2"``.
        batch_size: batch size of every pass.
    """
    return {
        "great_score": great_score(classifier, x, y, batch_size=batch_size),
        "logit_margin": logit_margin(classifier, x, y, batch_size=batch_size),
        "gradient_norm": gradient_norm(classifier, x, y, threat_model=threat_model,
                                       batch_size=batch_size),
    }
