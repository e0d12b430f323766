"""Model outputs on Gaussian-noised copies of inputs: the sampling side of average-case robustness.

A :class:`Scorer` evaluates a classifier's scores on batches of torch tensors without
gradients. PyTorch models run on their own device through the same differentiable forward
function that :func:`art_fim.adapters.adapter_for` differentiates (ART's preprocessing chain
included), so sampled and linearised estimates see the same function; every other ART
classifier (including query-only ``BlackBoxClassifier``) is queried through ``predict``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from art_fim.adapters import ClassifierAdapter, NotDifferentiableError, adapter_for
from art_fim.checks import OutputType


@dataclass
class Scorer:
    """Batched scores of a classifier, without gradients.

    Attributes:
        scores: ``[N, *input_shape] -> [N, K]`` on :attr:`device` (logits or probabilities, as
            the model returns them).
        device: where the inputs should be created.
        dtype: the dtype the model computes in.
        input_shape: shape of one input, or ``None`` when unknown (a bare module).
        clip_values: the classifier's valid input range, or ``None``.
        adapter: the white-box adapter, or ``None`` for a classifier without input gradients.
    """

    scores: Callable[[Tensor], Tensor]
    device: torch.device
    dtype: torch.dtype
    input_shape: tuple[int, ...] | None
    clip_values: Any
    adapter: ClassifierAdapter | None = field(default=None)

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """Eval mode for the duration (see :meth:`ClassifierAdapter.evaluating`)."""
        if self.adapter is None:
            yield
            return
        with self.adapter.evaluating():
            yield


def scorer_for(
    classifier: Any, output_type: OutputType = "auto", *, need_gradients: bool = False
) -> Scorer:
    """Build the :class:`Scorer` of an ART classifier or a PyTorch module in eval mode.

    Args:
        classifier: ``PyTorchClassifier``, any ART classifier with ``predict``, or an
            ``nn.Module`` in eval mode.
        output_type: ``"auto"``, ``"logits"`` or ``"probabilities"`` (passed to the adapter).
        need_gradients: raise instead of falling back to ``predict`` when the classifier has no
            input gradients.

    Raises:
        NotDifferentiableError: ``need_gradients`` and the classifier has no input gradients.
        TypeError: the classifier has neither gradients nor ``predict``.
    """
    try:
        adapter: ClassifierAdapter | None = adapter_for(classifier, output_type)
    except NotDifferentiableError:
        if need_gradients:
            raise
        adapter = None
    forward = getattr(adapter, "forward", None)
    if forward is not None:
        dtype = adapter.dtype  # type: ignore[union-attr]

        def torch_scores(t: Tensor) -> Tensor:
            with torch.no_grad():
                return forward(t.to(dtype))

        return Scorer(torch_scores, adapter.device, dtype, adapter.input_shape, adapter.clip_values, adapter)
    predict = getattr(classifier, "predict", None)
    if not callable(predict):
        raise TypeError(f"{type(classifier).__name__} has neither input gradients nor a predict method.")

    def predict_scores(t: Tensor) -> Tensor:
        out = np.asarray(predict(t.cpu().numpy().astype(np.float32), batch_size=len(t)), dtype=np.float64)
        return torch.from_numpy(out)

    shape = getattr(classifier, "input_shape", None)
    return Scorer(
        predict_scores, torch.device("cpu"), torch.float32,
        tuple(shape) if shape is not None else None, getattr(classifier, "clip_values", None), adapter,
    )


def noisy_copies(x: Tensor, sigma: float, copies: int, generator: torch.Generator) -> Tensor:
    """Return ``x_b + σ ε`` for ``copies`` draws ``ε ∼ N(0, I)`` per input: ``[B · copies, *shape]``.

    Copies of one input are contiguous (``b``'s copies are rows ``b·copies … (b+1)·copies − 1``).
    The noise is not clipped to the valid input range: the estimators' definition
    ``P_{ε∼N(0,σ²I)}[argmax f(x+ε) = argmax f(x)]`` and its linearisation assume unclipped
    Gaussian noise (as the paper's code does).
    """
    noise = torch.randn(
        (x.shape[0], copies, *x.shape[1:]), generator=generator, device=x.device, dtype=x.dtype
    )
    return (x[:, None] + sigma * noise).reshape(x.shape[0] * copies, *x.shape[1:])
