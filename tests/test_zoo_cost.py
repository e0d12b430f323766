"""The zoo-cost extrapolation (``benchmarks/zoo_cost.py``) on a synthetic measurement: arithmetic
and coverage.

No model is built or scored: a made-up measurement goes through the extrapolation, whose
estimate must be ``n_examples / images_per_second + load`` per network, and every registry
entry must come out either mapped to a measured family or counted as unmeasured.
"""

from __future__ import annotations

import pytest

from leaderboard_cases import require_robustbench

require_robustbench()

from benchmarks.zoo_cost import (  # noqa: E402 - only once RobustBench is known to import
    FAMILIES,
    ROBUSTBENCH_N_EXAMPLES,
    Measurement,
    extrapolate,
    family_of,
    totals,
)
from leaderboard.registry import list_entries  # noqa: E402 - after the RobustBench check

ENTRIES = list_entries()
ROUTE = {"spectral_norm": {"method": "exact", "batch_size": 8},
         "trace": {"method": "exact", "batch_size": 8}}


def _measurement(family: str, images_per_second: float, load: float,
                 num_checkpoints: int = 1) -> Measurement:
    return Measurement(
        family=family, model="synthetic", n=8, num_checkpoints=num_checkpoints, build_seconds=0.0,
        load_seconds=load, warmup_seconds=0.0, fisher_seconds=8 / images_per_second,
        images_per_second=images_per_second, route=ROUTE, device="cpu",
    )


def test_estimate_is_n_examples_over_rate_plus_load() -> None:
    """A single-network entry costs n_examples / images_per_second + load; an m-member ensemble m
    times that.
    """
    measurements = {
        "cifar10/WRN-28-10": _measurement("cifar10/WRN-28-10", images_per_second=125.0, load=3.0),
        "cifar10/ResNet-50": _measurement("cifar10/ResNet-50", images_per_second=400.0, load=1.5),
        "imagenet/ResNet-50": _measurement("imagenet/ResNet-50", images_per_second=5.0, load=2.0),
    }
    by_key = {e.key: e for e in extrapolate(ENTRIES, FAMILIES, measurements)}
    assert ROBUSTBENCH_N_EXAMPLES == {"cifar10": 10_000, "cifar100": 10_000, "imagenet": 5_000}
    assert by_key["cifar10/Linf/Carmon2019Unlabeled"].seconds == pytest.approx(10_000 / 125.0 + 3.0)
    assert by_key["cifar10/Linf/Carmon2019Unlabeled"].family == "cifar10/WRN-28-10"
    assert by_key["imagenet/Linf/Standard_R50"].seconds == pytest.approx(5_000 / 5.0 + 2.0)
    assert (
        by_key["cifar10/Linf/Engstrom2019Robustness"].seconds == pytest.approx(10_000 / 400.0 + 1.5)
    )
    # Three ResNet-50 checkpoints: three networks to load and run.
    assert (
        by_key["cifar10/Linf/Chen2020Adversarial"].seconds
        == pytest.approx(3 * (10_000 / 400.0 + 1.5))
    )
    # Same architecture on CIFAR-100 (ten times the classes) is another family: not measured here.
    assert by_key["cifar100/Linf/Hendrycks2019Using"].seconds is None
    assert by_key["cifar100/Linf/Hendrycks2019Using"].family is None
    # RobustBench states no AutoAttack time.
    assert all(e.autoattack_seconds is None for e in by_key.values())


def test_every_entry_is_mapped_or_counted_unmeasured() -> None:
    """Measured plus unmeasured is the registry's count, per dataset and overall, with the sums
    right.
    """
    measurements = {f.key: _measurement(f.key, images_per_second=10.0 + i, load=1.0)
                    for i, f in enumerate(FAMILIES[:6])}
    estimates = extrapolate(ENTRIES, FAMILIES, measurements)
    assert len(estimates) == len(ENTRIES) == 206
    summary = totals(estimates)
    assert summary["all"]["entries"] == len(ENTRIES)
    assert summary["all"]["measured"] + summary["all"]["unmeasured"] == len(ENTRIES)
    assert summary["all"]["measured"] == sum(e.family is not None for e in estimates) > 0
    assert summary["all"]["unmeasured"] > 0
    assert sum(summary[d]["entries"] for d in ROBUSTBENCH_N_EXAMPLES) == len(ENTRIES)
    assert (
        summary["all"]["seconds"] == pytest.approx(sum(e.seconds for e in estimates
                                                       if e.seconds is not None))
    )
    for e in estimates:
        assert (e.seconds is None) == (e.family is None)
        if e.family is not None:
            assert e.family in measurements and e.key.startswith(e.family.split("/", 1)[0] + "/")


def test_family_table_matches_the_model_info() -> None:
    """Each family's timed entry is in the zoo, on its dataset, and its architecture is one the
    family stands for.
    """
    by_key = {e.key: e for e in ENTRIES}
    assert len({f.key for f in FAMILIES}) == len(FAMILIES)
    for family in FAMILIES:
        entry = by_key[f"{family.dataset}/{family.threat_model}/{family.model}"]
        assert family_of(entry, FAMILIES) == family, family.key
