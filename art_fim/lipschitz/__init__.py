"""Certified bounds from the architecture: ℓ2 Lipschitz constants of real networks.

:func:`lipschitz_bound` walks a network's module graph (``torch.fx``) and composes exact
per-layer constants; the functions of :mod:`art_fim.lipschitz.certify` turn the bound into a
certified Fisher bound, certified radii and robust accuracy, and compare it with the exact local
``‖J(x)‖₂``.

| Paper links: https://arxiv.org/abs/2410.23382 (Lipschitz constant from the architecture),
| https://arxiv.org/abs/2606.04767 (input Fisher spectral norm)
"""

from art_fim.lipschitz.certify import (
    Tightness,
    certified_accuracy,
    certified_fisher_bound,
    certified_radius,
    jacobian_spectral_norm,
    local_norms,
    tightness,
)
from art_fim.lipschitz.graph import LipschitzBound, lipschitz_bound
from art_fim.lipschitz.rules import LayerBound, UnsupportedLayerError

__all__ = [
    "LayerBound",
    "LipschitzBound",
    "Tightness",
    "UnsupportedLayerError",
    "certified_accuracy",
    "certified_fisher_bound",
    "certified_radius",
    "jacobian_spectral_norm",
    "lipschitz_bound",
    "local_norms",
    "tightness",
]
