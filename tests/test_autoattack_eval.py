"""AutoAttack accuracy with a state file: an interrupted run resumes and ends where an unbroken one ends."""

from __future__ import annotations

import json

import pytest
import torch
from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted
from pyautoattack.fab_pt import FABAttack_PT
from pyautoattack import AutoAttack
from torch import nn

from leaderboard.zoo.autoattack_eval import autoattack_accuracy

_EPS = 0.05  # small enough that some points survive APGD, so FAB-T and Square have work


def _tiny_problem():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 10)).eval()
    x = torch.rand(12, 3, 4, 4)
    y = model(x).argmax(1)  # every point correct, so robust accuracy starts at 100%
    y[:2] = (y[:2] + 1) % 10  # and two wrong ones
    return model, x, y


class _Interrupted(Exception):
    pass


def _raise(*args, **kwargs):
    raise _Interrupted


def test_an_interrupted_autoattack_resumes_to_autoattacks_own_unbroken_result(tmp_path, monkeypatch):
    """Stopped during FAB-T, a rerun skips both APGDs and ends on pyautoattack's own accuracy exactly.

    The reference is one uninterrupted ``run_standard_evaluation``: the attack-by-attack loop
    with its saved flags must be the same computation, point for point.
    """
    model, x, y = _tiny_problem()
    reference = AutoAttack(model, norm="Linf", eps=_EPS, version="standard", seed=0)
    _, y_adv = reference.run_standard_evaluation(x, y, batch_size=500)
    unbroken = 100.0 * (y_adv == y).float().mean().item()
    assert 0.0 < unbroken < 100.0 * 10 / 12, "the test needs points attacked and points left"

    state_path = tmp_path / "state.json"
    with monkeypatch.context() as patch:
        patch.setattr(FABAttack_PT, "perturb", _raise)
        with pytest.raises(_Interrupted):
            autoattack_accuracy(model, x, y, norm="Linf", eps=_EPS, state_path=state_path)
    saved = json.loads(state_path.read_text())
    assert saved["done"] == ["apgd-ce", "apgd-t"]
    assert sum(saved["robust"]) < 10  # the APGDs' successes are kept

    with monkeypatch.context() as patch:  # a resumed run must not run the APGDs again
        patch.setattr(APGDAttack, "perturb", _raise)
        patch.setattr(APGDAttack_targeted, "perturb", _raise)
        resumed = autoattack_accuracy(model, x, y, norm="Linf", eps=_EPS, state_path=state_path)
    assert resumed["autoattack_acc"] == unbroken
    assert resumed["clean_acc"] == pytest.approx(100.0 * 10 / 12)
    assert json.loads(state_path.read_text())["done"] == ["apgd-ce", "apgd-t", "fab-t", "square"]


def test_a_state_file_made_with_other_settings_is_refused(tmp_path):
    """A state saved at one radius must not be resumed at another: the error names the file."""
    model, x, y = _tiny_problem()
    state_path = tmp_path / "state.json"
    autoattack_accuracy(model, x[:3], y[:3], norm="Linf", eps=_EPS, state_path=state_path)
    with pytest.raises(ValueError, match="state.json"):
        autoattack_accuracy(model, x[:3], y[:3], norm="Linf", eps=2 * _EPS, state_path=state_path)
