"""A small CIFAR-10 CNN (about 0.3 M parameters) used by the bundled examples.

Inputs are [0, 1] pixels, ``[N, 3, 32, 32]``; the per-channel normalisation is left to ART's
``preprocessing=(CIFAR10_MEAN, CIFAR10_STD)``, so the examples exercise that chain.
"""

from __future__ import annotations

from torch import nn

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


def small_cnn(num_classes: int = 10) -> nn.Sequential:
    """Three conv blocks (32, 64, 128 channels), global average pooling, a linear head."""
    return nn.Sequential(
        _block(3, 32), _block(32, 64), _block(64, 128),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, num_classes),
    )
