"""The Lipschitz bound is never below the exact ``‖J(x)‖₂``: a search, not an enumeration.

``hypothesis`` draws small networks from every layer type with a rule, with random constructor
arguments, in sequence and in parallel branches
(:func:`art_fim.lipschitz.soundness.random_network`); for each,
:func:`~art_fim.lipschitz.soundness.search` climbs the exact float64 ``‖J(x)‖₂`` and the pair ratio
``‖f(a) − f(b)‖ / ‖a − b‖`` from structured and random starts. A ratio above 1 is a counterexample,
and hypothesis shrinks the network that shows it. The budget is fixed (``derandomize=True``);
``benchmarks/lipschitz_soundness.py`` runs the same search longer.
"""

from __future__ import annotations

import random
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from art_fim.lipschitz import lipschitz_bound, soundness
from art_fim.lipschitz.soundness import TOLERANCE, random_network, search


@settings(max_examples=20, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.randoms(use_true_random=False))
def test_no_input_exceeds_the_bound_of_a_random_network(rng: random.Random):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch's notes on align_corners and scale factors
        network = random_network(rng)
        result = search(network, starts=6, steps=3, pair_steps=8)
    if result.refused is not None:
        return
    assert result.jacobian_ratio <= 1 + TOLERANCE, (
        f"‖J(x)‖₂ = {result.jacobian_ratio:.6g} × bound {result.bound:.6g} on {network.model!r}, "
        f"input shape {network.input_shape}, at x = {result.witness}"
    )
    assert result.pair_ratio <= 1 + TOLERANCE, (
        f"‖f(a) − f(b)‖ = {result.pair_ratio:.6g} × L‖a − b‖ (L = {result.bound:.6g}) on "
        f"{network.model!r}"
    )


def test_the_search_finds_a_planted_counterexample(monkeypatch):
    """The search is not blind: a bound made too small on purpose (``1`` for a max pool whose
    windows overlap three times, exact constant √3) is caught at a peak, with the ratio √3.
    """
    network = soundness.RandomNetwork(nn.Sequential(nn.MaxPool1d(3, 1, 1)).double().eval(), (1, 9),
                                      None)
    too_small = lipschitz_bound(nn.Sequential(nn.Identity()).eval(), (1, 9))  # 1.0
    monkeypatch.setattr(soundness, "lipschitz_bound", lambda *args, **kwargs: too_small)
    result = search(network, starts=6, steps=3, pair_steps=8)
    assert result.jacobian_ratio == pytest.approx(3**0.5, rel=1e-9)
    assert result.pair_ratio > 1 + TOLERANCE
