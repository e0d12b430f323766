"""An ART ``PyTorchClassifier`` as one ``torch.nn.Module``: its standardisation, then its model.

The bound must hold in the classifier's own input scale (the [0, 1] pixels a user passes to
ART), so ``(x − mean)/std`` is part of the function; it contributes ``max 1/|std|``. Any other
preprocessing step (a defence) has no rule and is named in the error.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from art_fim.lipschitz.rules import UnsupportedLayerError


class Standardise(nn.Module):
    """``(x − mean) / std`` with ART's broadcasting of ``mean`` and ``std``."""

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean, dtype=np.float32)))
        self.register_buffer("std", torch.as_tensor(np.asarray(std, dtype=np.float32)))

    def forward(self, x: Tensor) -> Tensor:
        """``(x − mean) / std``."""
        return (x - self.mean) / self.std


def classifier_module(classifier: Any, input_shape: tuple[int, ...]) -> nn.Module:
    """``nn.Sequential(*standardisations, classifier.model)`` for a ``PyTorchClassifier``.

    The classifier's model is shared, not copied, and its training flags are left as they are.

    Raises:
        UnsupportedLayerError: a preprocessing step other than mean/std standardisation.
    """
    from art.preprocessing.standardisation_mean_std.numpy import StandardisationMeanStd
    from art.preprocessing.standardisation_mean_std.pytorch import StandardisationMeanStdPyTorch
    from art.preprocessing.standardisation_mean_std.utils import broadcastable_mean_std

    steps: list[nn.Module] = []
    example = np.zeros((1, *input_shape), dtype=np.float32)
    for op in classifier.preprocessing_operations or []:
        if not getattr(op, "apply_predict", True):
            continue
        if isinstance(op, (StandardisationMeanStd, StandardisationMeanStdPyTorch)):
            steps.append(Standardise(*broadcastable_mean_std(example, op.mean, op.std)))
            continue
        raise UnsupportedLayerError(
            "No ℓ2 Lipschitz rule for the preprocessing step "
            f"{type(op).__module__}.{type(op).__qualname__}: only mean/std standardisation is "
            "supported. Bound the model without it, or remove the defence."
        )
    return nn.Sequential(*steps, classifier.model)
