"""The sandwich on the project's own zoo: certified robust accuracy never exceeds AutoAttack's.

The certificate (margin > √2 L ε₂) is a lower bound on every attack's robust accuracy and
AutoAttack's is an upper bound on the true one, so a certified value above AutoAttack's means a
bug in the Lipschitz bound or in the attack. Checked for every zoo model with an AutoAttack
measurement committed under ``leaderboard/zoo/model_info``; skipped when there is none.
"""

from __future__ import annotations

import pytest

from leaderboard.zoo import sandwich
from leaderboard.zoo.weights import ZOO_DIR

MEASURED = sandwich.measured_models(ZOO_DIR)


@pytest.mark.slow
@pytest.mark.skipif(not MEASURED, reason="no AutoAttack-measured zoo model is committed yet")
def test_certified_accuracy_is_at_most_autoattack():
    rows = sandwich.zoo_rows(ZOO_DIR, predicted=False)  # the Fisher pass is not what is checked
    assert len(rows) == len(MEASURED)
    for row in rows:
        assert 0.0 <= row["certified"] <= row["autoattack"], row
    assert not sandwich.violations(rows)


def test_a_certified_value_above_autoattack_is_reported():
    """The check flags exactly the rows where certified exceeds AutoAttack."""
    rows = [
        {"name": "a", "threat": "Linf", "certified": 10.0, "autoattack": 9.9},
        {"name": "b", "threat": "L2", "certified": 5.0, "autoattack": 5.0},
        {"name": "c", "threat": "L2", "certified": 50.0, "autoattack": float("nan")},
    ]
    assert [r["name"] for r in sandwich.violations(rows)] == ["a"]
