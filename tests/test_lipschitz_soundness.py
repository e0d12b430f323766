"""The Lipschitz bound and its certificates are never below an exhibited value: a search.

``hypothesis`` draws small networks from every layer type with a rule, with random constructor
arguments, in sequence and in parallel branches, and with the classes of model the bound must
prove or refuse (hooks, in-place changes and view mutations, Python values taken from the input,
casts and rounding, keyword-argument calls, activation arguments out of range)
(:func:`benchmarks.lipschitz_networks.random_network`); for each,
:func:`~benchmarks.lipschitz_search.search` climbs the exact float64 ``‖J(x)‖₂`` and the pair ratio
``‖f(a) − f(b)‖ / ‖a − b‖`` from structured and random starts. It also draws certificate
scenarios (predict-time defences, a bound reused for another input shape, preprocessing or
weights) and checks each certified radius against the distance at which the prediction changes.
A ratio above 1 is a counterexample, and hypothesis shrinks the draw that shows it; a refusal by
name is allowed. The budget is fixed (``derandomize=True``); ``benchmarks/lipschitz_soundness.py``
runs the same search longer.
"""

from __future__ import annotations

import random
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from art_fim.lipschitz import lipschitz_bound
from benchmarks import lipschitz_search
from benchmarks.lipschitz_networks import (
    CHUNK,
    Cast,
    Escape,
    InPlace,
    Keyword,
    RandomNetwork,
    classes_of,
    random_network,
)
from benchmarks.lipschitz_search import (
    TOLERANCE,
    check_scenario,
    random_scenario,
    search,
    search_many,
)

_SETTINGS = {"deadline": None, "derandomize": True, "database": None,
             "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}


@settings(max_examples=40, **_SETTINGS)
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


@settings(max_examples=20, **_SETTINGS)
@given(st.randoms(use_true_random=False))
def test_no_prediction_changes_inside_a_certified_radius(rng: random.Random):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ART's notes on defences
        scenario = random_scenario(rng)
        outcome = check_scenario(scenario, directions=2)
    assert outcome.ratio <= 1 + TOLERANCE, (
        f"certified radius {outcome.ratio:.6g} × the distance of a prediction change on "
        f"{scenario.description}"
    )
    if scenario.kind != "bound used as computed":
        assert outcome.refused is not None, scenario.description


def _block(layer: nn.Module, shape: tuple[int, ...] = (5,)) -> RandomNetwork:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(shape[-1], shape[-1]), layer).double().eval()
    return RandomNetwork(model, shape, None, classes_of(model))


_SOUND = {InPlace: InPlace.SOUND, Cast: Cast.SOUND, Keyword: Keyword.KINDS}


@pytest.mark.parametrize(
    "block",
    [InPlace(kind, 100.0) for kind in InPlace.KINDS]
    + [Cast(kind) for kind in Cast.KINDS]
    + [Escape(kind) for kind in Escape.KINDS]
    + [Keyword(kind, -1.5, torch.randn(5, 3, generator=torch.Generator().manual_seed(1),
                                       dtype=torch.float64)) for kind in Keyword.KINDS],
    ids=lambda b: f"{type(b).__name__}-{b.kind}",
)
def test_every_generated_class_is_proven_or_refused(block):
    """Each kind the generator draws: the sound ones bounded at or above every exhibited ratio,
    the others refused by name.
    """
    network = _block(block)
    result = search(network, starts=6, steps=3, pair_steps=8)
    sound = block.kind in _SOUND.get(type(block), ())
    assert (result.refused is None) == sound, result.refused
    assert result.ratio <= 1 + TOLERANCE


@pytest.mark.parametrize("where", ["leaf", "root"])
@pytest.mark.parametrize("kind", ["forward", "pre"])
def test_hooked_networks_are_refused(where, kind):
    network = _block(nn.ReLU())
    target = network.model[0] if where == "leaf" else network.model
    if kind == "forward":
        target.register_forward_hook(lambda m, i, o: 100 * o)
    else:
        target.register_forward_pre_hook(lambda m, i: (100 * i[0],))
    assert "hook" in classes_of(network.model)
    result = search(network, starts=4, steps=1, pair_steps=2)
    assert result.refused is not None and "hook" in result.refused


def test_the_search_finds_a_planted_counterexample(monkeypatch):
    """The search is not blind: a bound made too small on purpose (``1`` for a max pool whose
    windows overlap three times, exact constant √3) is caught at a peak, with the ratio √3.
    """
    network = RandomNetwork(nn.Sequential(nn.MaxPool1d(3, 1, 1)).double().eval(), (1, 9), None)
    too_small = lipschitz_bound(nn.Sequential(nn.Identity()).eval(), (1, 9))  # 1.0
    monkeypatch.setattr(lipschitz_search, "lipschitz_bound", lambda *args, **kwargs: too_small)
    result = search(network, starts=6, steps=3, pair_steps=8)
    assert result.jacobian_ratio == pytest.approx(3**0.5, rel=1e-9)
    assert result.pair_ratio > 1 + TOLERANCE


def test_the_search_finds_a_planted_certificate_counterexample():
    """A bound 100 times too small certifies radii 100 times too large: the line search along
    the margin's gradient sees the prediction change inside them.
    """
    scenario = random_scenario(random.Random(3), "bound used as computed")
    assert check_scenario(scenario).ratio <= 1 + TOLERANCE
    scenario.bound = float(scenario.bound) / 100
    assert check_scenario(scenario).ratio > 1 + TOLERANCE


@pytest.mark.parametrize("seed", range(6))
def test_the_search_runs_to_its_budget_on_any_seed(seed):
    """No crash and no counterexample over a few draws per seed (once, some seeds aborted the
    interpreter in max_pool3d's backward, or drew a network that broke at a larger batch).
    """
    report = search_many(seed, 8, starts=CHUNK + 1, steps=1, pair_steps=2)
    assert not report.crashes, report.crashes
    assert report.worst_ratio <= 1 + TOLERANCE, report.counterexamples
    assert report.networks + report.refused + sum(d for d, _ in report.scenarios.values()) == 8


@pytest.mark.parametrize("axes", [1, 2, 3])
def test_max_pools_never_combine_padding_and_dilation(axes):
    """The configurations whose backward aborts the interpreter are never drawn."""
    from benchmarks.lipschitz_networks import _max_pool

    rng = random.Random(axes)
    for _ in range(300):
        pool = _max_pool(rng, axes, functional=rng.random() < 0.5)
        options = pool.kwargs if hasattr(pool, "kwargs") else vars(pool)
        if options.get("padding", 0):
            assert options.get("dilation", 1) == 1
