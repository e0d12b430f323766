"""Which ART defences gradient or query access can score, and what the score then means.

The input Fisher is a property of a smooth, deterministic map from inputs to an output
distribution. ART defences change that map in ways the two kinds of access see differently:

* **Postprocessing defences** act on ``predict``'s outputs, which ART's ``class_gradient``
  (and autograd through a PyTorch model) never sees. White-box access refuses every one of
  them instead of silently scoring the undefended model. Query-only access sees them:
  ``ReverseSigmoid`` (a smooth map of the probabilities) is scored, with a warning that the
  value is the Fisher of the *reported* probabilities; ``Rounded``, ``HighConfidence`` and
  ``ClassLabels`` make the outputs piecewise constant, not a distribution, or labels, and
  ``GaussianNoise`` makes them random: refused. Other postprocessors are scored with the
  same warning as ``ReverseSigmoid``.
* **Randomised preprocessing** (``Cutout``, ``GaussianAugmentation``, ``TotalVarMin``
  applied at predict time) gives a different function at every call: exact, Lanczos and
  power would disagree with each other and across seeds. Refused by name in both,
  and any model whose outputs change between two evaluations of the same batch is refused
  by :func:`check_repeatable`.
* **Quantising preprocessing** (``FeatureSqueezing``, ``JpegCompression``,
  ``ThermometerEncoding``, ``PixelDefend``, MP3 and video compression) is piecewise
  constant: its true input Fisher is zero almost everywhere, finite differences measure
  the jumps, and the PyTorch versions pass straight-through (BPDA) gradients that belong to
  the undefended model. Refused in both.

Defences that do not apply at predict time (``apply_predict=False``) are ignored, as ART's
own ``predict`` ignores them.

The certificates of :mod:`art_fim.lipschitz` (``access="certified"``) bound the model with its
standardisation and read margins from ``predict``: every other predict-time defence, pre- or
postprocessing, would put a function between the two that the bound does not cover, so each is
refused by name.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import torch
from torch import Tensor

#: How an estimator reaches the model: through input gradients or through ``predict`` queries;
#: ``"certified"``: a Lipschitz bound of the model, with margins from ``predict``.
Access = Literal["whitebox", "blackbox", "certified"]

RANDOMISED = frozenset({
    "Cutout", "CutoutPyTorch", "CutoutTensorFlowV2", "GaussianAugmentation", "TotalVarMin",
    "CutMix", "CutMixPyTorch", "CutMixTensorFlowV2", "Mixup", "MixupPyTorch", "MixupTensorFlowV2",
})
QUANTISING = frozenset({
    "FeatureSqueezing", "JpegCompression", "ThermometerEncoding", "PixelDefend",
    "Mp3Compression", "Mp3CompressionPyTorch", "VideoCompression", "VideoCompressionPyTorch",
})
# Postprocessors that query-only access refuses, and why.
REFUSED_POSTPROCESSING = {
    "Rounded": "rounds the outputs, so they are piecewise constant",
    "HighConfidence": "zeroes the small probabilities, so the outputs are no longer a distribution",
    "ClassLabels": "returns labels, not scores",
    "GaussianNoise": "adds random noise to every output",
}


class UnsupportedDefenceError(ValueError):
    """The classifier's defences make its input Fisher undefined, or invisible to the access."""


def _active(defences: Any) -> list[Any]:
    if defences is None:
        return []
    defences = defences if isinstance(defences, (list, tuple)) else [defences]
    return [d for d in defences if getattr(d, "apply_predict", True)]


def check_defences(classifier: Any, access: Access) -> None:
    """Refuse, or warn about, the classifier's predict-time defences (see the module docstring).

    Args:
        classifier: any classifier; ART estimators carry ``preprocessing_defences`` and
            ``postprocessing_defences``.
        access: ``"whitebox"`` (gradients), ``"blackbox"`` (``predict`` queries) or
            ``"certified"`` (a Lipschitz bound of the model, margins from ``predict``).

    Raises:
        UnsupportedDefenceError: a defence that this access cannot score.
    """
    if access == "certified":
        _check_certified(classifier)
        return
    for defence in _active(getattr(classifier, "preprocessing_defences", None)):
        name = type(defence).__name__
        if name in RANDOMISED:
            raise UnsupportedDefenceError(
                f"{name} is applied at predict time and is random: every call scores a different "
                "function, so no Fisher value is reproducible. Score the classifier without it (or "
                f"with {name}(apply_predict=False))."
            )
        if name in QUANTISING:
            raise UnsupportedDefenceError(
                f"{name} quantises the inputs: the defended model is piecewise constant, its input "
                "Fisher is zero almost everywhere, and neither gradients (straight-through, i.e. "
                "the undefended model's) nor finite differences (the jumps) measure it. Score the "
                "classifier without the defence."
            )
    post = _active(getattr(classifier, "postprocessing_defences", None))
    if not post:
        return
    names = ", ".join(type(d).__name__ for d in post)
    if access == "whitebox":
        raise UnsupportedDefenceError(
            f"The postprocessing defences ({names}) change predict's outputs, but gradients do not "
            "pass them: gradients would score the undefended model. Pass a classifier "
            "without postprocessing_defences to score the model, or method='blackbox' to score "
            "the outputs it reports (ReverseSigmoid only)."
        )
    for defence in post:
        name = type(defence).__name__
        if name in REFUSED_POSTPROCESSING:
            raise UnsupportedDefenceError(
                f"{name} {REFUSED_POSTPROCESSING[name]}: the reported outputs have no input Fisher "
                "that queries can estimate. Score the classifier without it."
            )
    warnings.warn(
        f"Scoring the outputs after the postprocessing defences ({names}): the value is the input "
        "Fisher of the probabilities the classifier reports, not of the undefended model.",
        UserWarning,
        stacklevel=3,
    )


def _check_certified(classifier: Any) -> None:
    """Refuse every predict-time defence: the Lipschitz bound covers none of them."""
    for kind in ("preprocessing", "postprocessing"):
        defences = _active(getattr(classifier, f"{kind}_defences", None))
        if defences:
            names = ", ".join(type(d).__name__ for d in defences)
            raise UnsupportedDefenceError(
                f"The {kind} defences ({names}) change what predict returns, but the Lipschitz "
                "bound is of the model without them: the margins and the bound would describe "
                f"different functions, and the certificate would not hold. Certify a classifier "
                f"without {kind}_defences (or with apply_predict=False)."
            )


def check_repeatable(first: Tensor, second: Tensor, eps: float, name: str) -> None:
    """Refuse a model whose scores differ between two evaluations of the same inputs.

    Rounding differences of non-deterministic kernels stay below ``√ε`` relative; a random
    defence or a model left stochastic changes the scores far more.

    Args:
        first: ``[B, K]`` scores of one evaluation.
        second: the scores of another evaluation of the same batch.
        eps: machine epsilon of the model's outputs.
        name: the classifier's name, for the message.

    Raises:
        UnsupportedDefenceError: the two evaluations disagree.
    """
    tol = math.sqrt(max(eps, torch.finfo(torch.float64).eps))
    first, second = first.detach().double().cpu(), second.detach().double().cpu()
    if not torch.allclose(first, second, rtol=tol, atol=tol):
        gap = float((first - second).abs().max())
        raise UnsupportedDefenceError(
            f"{name} returned different scores for the same inputs (by up to {gap:.3g}): its "
            "outputs are random (a randomised defence applied at predict time, or a stochastic "
            "layer). The Fisher of one random draw is not reproducible; score a deterministic "
            "classifier."
        )
