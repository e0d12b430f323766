"""AutoAttack accuracy with a state file: an interrupted run resumes and ends where an unbroken one
ends.
"""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from pyautoattack import AutoAttack
from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted
from pyautoattack.fab_pt import FABAttack_PT
from pyautoattack.square import SquareAttack
from torch import nn

from leaderboard.zoo.autoattack_eval import autoattack_accuracy

_EPS = 0.05
_BATCH = 4  # several batches per attack, so batch boundaries are exercised
_ATTACKS = (APGDAttack, APGDAttack_targeted, FABAttack_PT, SquareAttack)


def _tiny_problem():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 10)).eval()
    x = torch.rand(12, 3, 4, 4)
    y = model(x).argmax(1)
    y[:2] = (y[:2] + 1) % 10  # two points wrong from the start
    return model, x, y


class _Interrupted(Exception):
    pass


def _record_calls(patch, log, interrupt_at=None, forbidden=()):
    """Wrap every attack's ``perturb``: log (attack, seed, inputs) and call the real method.

    ``interrupt_at`` raises at that attack class's first call; ``forbidden`` classes raise
    ``AssertionError`` if called at all.
    """
    for cls in _ATTACKS:
        real = cls.perturb

        def perturb(self, x, y, *args, _cls=cls, _real=real, **kwargs):
            assert _cls not in forbidden, f"{_cls.__name__} ran again after a resume"
            if _cls is interrupt_at:
                raise _Interrupted
            digest = hashlib.sha256(x.numpy().tobytes() + y.numpy().tobytes()).hexdigest()
            log.append((_cls.__name__, self.seed, digest))
            return _real(self, x, y, *args, **kwargs)

        patch.setattr(cls, "perturb", perturb)


def test_an_interrupted_autoattack_resumes_to_autoattacks_own_unbroken_result(
    tmp_path, monkeypatch
):
    """Stopped during FAB-T, a rerun skips both APGDs and ends on pyautoattack's own flags exactly.

    The reference is one uninterrupted ``run_standard_evaluation``. The attack-by-attack loop,
    interrupted and resumed, must call every attack with the same seed on the same points in
    the same batches (the call logs are equal) and reach the same per-point robust flags.
    """
    model, x, y = _tiny_problem()
    reference_calls, resumed_calls = [], []
    with monkeypatch.context() as patch:
        _record_calls(patch, reference_calls)
        reference = AutoAttack(model, norm="Linf", eps=_EPS, version="standard", seed=0)
        _, y_adv = reference.run_standard_evaluation(x, y, batch_size=_BATCH)
    reference_robust = (y_adv == y).tolist()
    assert 0 < sum(reference_robust) < 10, "the test needs points attacked and points left"
    assert {name for name, _, _ in reference_calls} == {cls.__name__ for cls in _ATTACKS}

    state_path = tmp_path / "state.json"
    with monkeypatch.context() as patch:
        _record_calls(patch, resumed_calls, interrupt_at=FABAttack_PT)
        with pytest.raises(_Interrupted):
            autoattack_accuracy(model, x, y, norm="Linf", eps=_EPS, batch_size=_BATCH,
                                state_path=state_path)
    assert json.loads(state_path.read_text())["done"] == ["apgd-ce", "apgd-t"]

    with monkeypatch.context() as patch:
        _record_calls(patch, resumed_calls, forbidden=(APGDAttack, APGDAttack_targeted))
        resumed = autoattack_accuracy(model, x, y, norm="Linf", eps=_EPS, batch_size=_BATCH,
                                      state_path=state_path)
    assert resumed_calls == reference_calls
    saved = json.loads(state_path.read_text())
    assert saved["robust"] == reference_robust
    assert saved["done"] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert resumed["autoattack_acc"] == pytest.approx(100.0 * sum(reference_robust) / len(y))
    assert resumed["clean_acc"] == pytest.approx(100.0 * 10 / 12)


def test_a_state_file_made_with_other_settings_or_weights_is_refused(tmp_path):
    """A state saved at one radius, or for other weights, must not be resumed: the error names the
    file.
    """
    model, x, y = _tiny_problem()
    state_path = tmp_path / "state.json"
    autoattack_accuracy(model, x[:3], y[:3], norm="Linf", eps=_EPS, state_path=state_path)
    with pytest.raises(ValueError, match="state.json was made with other eps"):
        autoattack_accuracy(model, x[:3], y[:3], norm="Linf", eps=2 * _EPS, state_path=state_path)
    with torch.no_grad():
        model[1].bias += 1.0
    with pytest.raises(ValueError, match="state.json was made with other model_sha256"):
        autoattack_accuracy(model, x[:3], y[:3], norm="Linf", eps=_EPS, state_path=state_path)
