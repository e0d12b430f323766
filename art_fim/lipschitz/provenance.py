"""What function a Lipschitz bound was computed for, so that it is never used for another one.

A bound holds for one network (its weights and structure), one preprocessing (an ART
classifier's ``(x − mean)/std`` is part of the function: ``std = 0.1`` multiplies the constant by
10) and one input shape (a convolution's operator norm, a pooling's window count and a fully
convolutional network's output size depend on it). :class:`Provenance` records the three; the
certified functions compare it with the classifier and inputs they are given and refuse a
mismatch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class Provenance:
    """The function a bound holds for.

    Attributes:
        model: SHA-256 of the network's structure (every submodule's type and configuration)
            and of every parameter and buffer (names, dtypes, shapes, bytes).
        model_name: the network's class, for messages.
        preprocessing: ``(mean, std)`` of each standardisation the classifier applies before
            the network (empty for a bare module), as flat tuples.
        input_shape: shape of one input.
    """

    model: str
    model_name: str
    preprocessing: tuple[tuple[tuple[float, ...], tuple[float, ...]], ...]
    input_shape: tuple[int, ...]

    def mismatch(self, used: Provenance) -> str | None:
        """Why a bound of ``self`` does not hold for ``used``, or ``None`` when it does."""
        if tuple(used.input_shape) != tuple(self.input_shape):
            return (
                f"it was computed for inputs of shape {self.input_shape} and is used on inputs of "
                f"shape {used.input_shape} (convolution and pooling constants depend on the "
                "shape): compute lipschitz_bound for this shape"
            )
        if used.preprocessing != self.preprocessing:
            return (
                f"it was computed with preprocessing {_describe(self.preprocessing)} and is used "
                f"with {_describe(used.preprocessing)} (the standardisation is part of the "
                "function: std = 0.1 multiplies the constant by 10): compute "
                "lipschitz_bound(classifier) for the classifier you certify"
            )
        if used.model != self.model:
            return (
                f"it was computed for another network (or other weights) than this "
                f"{used.model_name}: compute lipschitz_bound for this one"
            )
        return None


def _describe(preprocessing: tuple) -> str:
    if not preprocessing:
        return "none"
    return ", ".join(f"(x − {list(m)})/{list(s)}" for m, s in preprocessing)


def fingerprint(module: nn.Module) -> str:
    """SHA-256 of a module's structure, parameters and buffers (see :class:`Provenance`)."""
    digest = hashlib.sha256()
    for name, sub in module.named_modules():
        kind = type(sub)
        digest.update(f"{name}|{kind.__module__}.{kind.__qualname__}|{sub.extra_repr()}".encode())
    tensors = [*module.named_parameters(remove_duplicate=False),
               *module.named_buffers(remove_duplicate=False)]
    for name, tensor in tensors:
        data = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def provenance_of(model: Any, input_shape: tuple[int, ...]) -> Provenance:
    """The :class:`Provenance` of a ``torch.nn.Module`` or an ART ``PyTorchClassifier``.

    Raises:
        UnsupportedLayerError: a classifier whose preprocessing is not a standardisation.
        TypeError: anything else.
    """
    from art.estimators.classification import PyTorchClassifier

    from art_fim.lipschitz.preprocessing import Standardise, classifier_module

    shape = tuple(int(s) for s in input_shape)
    if isinstance(model, PyTorchClassifier):
        steps = list(classifier_module(model, shape))[:-1]
        network = model.model
    elif isinstance(model, nn.Module):
        steps, network = [], model
    else:
        raise TypeError(
            "A LipschitzBound can be checked against a torch.nn.Module or an ART "
            f"PyTorchClassifier only, got {type(model).__name__}: pass the bound as a float to "
            "take responsibility for it."
        )
    preprocessing = tuple(
        (_flat(step.mean), _flat(step.std)) for step in steps if isinstance(step, Standardise)
    )
    return Provenance(fingerprint(network), type(network).__name__, preprocessing, shape)


def _flat(tensor: torch.Tensor) -> tuple[float, ...]:
    return tuple(np.asarray(tensor.detach().cpu(), dtype=np.float64).reshape(-1).tolist())
