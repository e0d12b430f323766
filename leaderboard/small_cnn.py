"""The bundled small CIFAR-10 CNN (about 0.3 M parameters).

The examples, benchmarks and tests use it. Inputs are [0, 1] pixels, ``[N, 3, 32, 32]``; the
per-channel normalisation is left to ART's ``preprocessing=(CIFAR10_MEAN, CIFAR10_STD)``, so the
examples exercise that chain. Its trained weights are ``examples/models/*.pt``
(``examples/train_small_cnn.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from art.estimators.classification import PyTorchClassifier
from torch import nn

from leaderboard.data import CIFAR10_MEAN, CIFAR10_STD

__all__ = ["load_classifier", "small_cnn"]


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


def small_cnn(num_classes: int = 10) -> nn.Sequential:
    """Three conv blocks (32, 64, 128 channels), global average pooling, a linear head."""
    return nn.Sequential(
        _block(3, 32), _block(32, 64), _block(64, 128),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, num_classes),
    )


def load_classifier(weights: Path) -> PyTorchClassifier:
    """The bundled float16 state dict as a float32 ART classifier on [0, 1] inputs."""
    model = small_cnn()
    state = torch.load(weights, weights_only=True)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return PyTorchClassifier(
        model=model.eval(), loss=nn.CrossEntropyLoss(), input_shape=(3, 32, 32), nb_classes=10,
        clip_values=(0.0, 1.0), preprocessing=(np.array(CIFAR10_MEAN), np.array(CIFAR10_STD)),
        device_type="cpu",
    )
