"""The committed SecurityCurve results against the AutoAttack records of the same models, images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.security_curve import (
    RESULTS,
    STEPS_PER_BALL,
    autoattack_records,
    comparison_rows,
    curve_models,
    pgd_settings,
)
from leaderboard.zoo.weights import ZOO_DIR

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = sorted(RESULTS.glob("cifar10/*/*.json"))


def test_one_step_size_lets_pgd_cross_every_ball() -> None:
    eps = [0.25, 0.5, 1.0]
    settings = pgd_settings(eps, 2, max_iter=20)
    assert settings["max_iter"] * settings["eps_step"] == pytest.approx(2.5 * max(eps))
    assert settings["eps_step"] == max(eps) / STEPS_PER_BALL
    assert settings["num_random_init"] == 1


def test_the_curve_models_are_the_five_with_further_budgets() -> None:
    assert sorted(curve_models(ZOO_DIR)) == sorted(
        ["vgg_pgd8", "resnet9_pgd2", "resnet9_pgd_l2_0.5", "densenet_noise0.1", "vit_noise0.1"])


@pytest.mark.parametrize("path", COMMITTED, ids=[f"{p.parent.name}/{p.stem}" for p in COMMITTED])
def test_a_committed_curve_ran_at_autoattacks_budgets_on_its_images(path: Path) -> None:
    record = json.loads(path.read_text())
    attacks = autoattack_records(ZOO_DIR, record["model"], record["threat_model"])
    assert record["eps"] == pytest.approx([float(a["eps"]) for a in attacks])
    assert record["n_examples"] == 500 == {a["n_examples"] for a in attacks}.pop()
    # Same model, same images: ART's benign accuracy is AutoAttack's clean accuracy.
    for attack in attacks:
        assert record["clean_acc"] == pytest.approx(float(attack["clean_acc"]), abs=1e-6)


def test_the_comparison_has_a_row_per_committed_budget() -> None:
    rows = comparison_rows(RESULTS, ZOO_DIR, ROOT / "leaderboard" / "results" / "zoo")
    assert len(rows) == 3 * len(COMMITTED)
    assert all(0 <= r[k] <= 100 for r in rows
               for k in ("securitycurve", "autoattack", "first_order", "refined"))
