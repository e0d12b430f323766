"""Leave-one-model-out isotonic calibration against a hand-computed leave-one-out."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leaderboard.calibration import leave_one_out_isotonic

SCORES = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
ACCURACY = np.array([10.0, 30.0, 20.0, 40.0, 50.0])
# Worked by hand with pool-adjacent-violators on the four other points, linear interpolation
# between fitted points and the end values held outside them:
#   without 1: (2,30),(3,20) pool to 25  -> at s=1, left of the fit: 25
#   without 2: (1,10),(3,20) already monotone -> at s=2: 15
#   without 3: (2,30),(4,40)            -> at s=3: 35
#   without 4: (2,30),(3,20) pool to 25; (3,25),(5,50) -> at s=4: 37.5
#   without 5: fitted 10, 25, 25, 40    -> at s=5, right of the fit: 40
HAND = np.array([25.0, 15.0, 35.0, 37.5, 40.0])


def test_five_points_match_the_hand_computation() -> None:
    fit = leave_one_out_isotonic(SCORES, ACCURACY, increasing=True)
    np.testing.assert_allclose(fit.predictions, HAND, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fit.errors, HAND - ACCURACY, rtol=0, atol=1e-12)
    assert fit.mae == pytest.approx((15 + 15 + 15 + 2.5 + 10) / 5, abs=1e-12)  # 11.5


@pytest.mark.filterwarnings("ignore:Confidence interval of the Spearman")  # 4 points, by design
def test_a_decreasing_score_is_the_mirror_image() -> None:
    # λ_max and the gradient norm fall as robustness rises: the fit runs the other way.
    fit = leave_one_out_isotonic(-SCORES, ACCURACY, increasing=False)
    np.testing.assert_allclose(fit.predictions, HAND, rtol=0, atol=1e-12)
    # "auto" picks the sign of the four training models' Spearman correlation, positive in
    # every fold here.
    auto = leave_one_out_isotonic(SCORES, ACCURACY, increasing="auto")
    np.testing.assert_allclose(auto.predictions, HAND, rtol=0, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.integers(3, 12).flatmap(lambda n: st.tuples(
    st.lists(st.floats(-5, 5, allow_nan=False), min_size=n, max_size=n),
    st.lists(st.floats(0, 100, allow_nan=False), min_size=n, max_size=n),
    st.booleans(),
)))
def test_a_held_out_prediction_stays_within_the_other_models_accuracies(case) -> None:
    score, accuracy, increasing = (np.array(case[0]), np.array(case[1]), case[2])
    fit = leave_one_out_isotonic(score, accuracy, increasing=increasing)
    for i, prediction in enumerate(fit.predictions):
        others = np.delete(accuracy, i)
        assert others.min() - 1e-9 <= prediction <= others.max() + 1e-9
    assert fit.mae == pytest.approx(np.mean(np.abs(fit.predictions - accuracy)))


def test_a_linear_relation_is_recovered_inside_and_clipped_outside() -> None:
    score = np.array([0.0, 1.0, 2.5, 3.0, 7.0, 8.0])
    accuracy = 4.0 * score + 3.0
    fit = leave_one_out_isotonic(score, accuracy, increasing=True)
    np.testing.assert_allclose(fit.predictions[1:-1], accuracy[1:-1], rtol=0, atol=1e-12)
    assert fit.predictions[0] == pytest.approx(accuracy[1])  # clipped to the nearest end
    assert fit.predictions[-1] == pytest.approx(accuracy[-2])


@pytest.mark.parametrize(("score", "accuracy", "match"), [
    ([1.0, 2.0], [3.0, 4.0], "at least 3"),
    ([1.0, 2.0, 3.0], [3.0, 4.0], "equal length"),
    ([1.0, np.nan, 3.0], [3.0, 4.0, 5.0], "finite"),
])
def test_bad_input_is_refused(score, accuracy, match) -> None:
    with pytest.raises(ValueError, match=match):
        leave_one_out_isotonic(np.array(score), np.array(accuracy), increasing=True)
