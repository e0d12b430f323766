"""The zoo's building blocks: architectures, the training attack, the regimes, the size budget."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from leaderboard.zoo.architectures import ARCHITECTURES, build
from leaderboard.zoo.plan import ZOO
from leaderboard.zoo.training import Regime, pgd, train, training_loss

# The zoo ships with the project: at most 40 MB of float16 weights in all.
_ZOO_BUDGET_BYTES = 40e6


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_architectures_take_pixels_and_return_ten_logits(architecture):
    """Each family maps [N, 3, 32, 32] pixels to [N, 10] logits and normalises inside."""
    torch.manual_seed(0)
    model = build(architecture).eval()
    x = torch.rand(2, 3, 32, 32)
    assert model(x).shape == (2, 10)
    assert any(type(m).__name__ == "Normalize" for m in model.modules())


def test_zoo_fits_the_shipping_budget():
    """The planned zoo's float16 state dicts add up to at most 40 MB, four families covered."""
    total = sum(2 * sum(p.numel() for p in build(entry.architecture).state_dict().values())
                for entry in ZOO.values())
    assert total <= _ZOO_BUDGET_BYTES
    assert {entry.architecture for entry in ZOO.values()} == set(ARCHITECTURES)
    assert len(ZOO) >= 12


def test_pgd_reaches_the_exact_worst_case_of_a_linear_model():
    """For logits W x, the ℓ∞ worst case of the cross-entropy is x − ε·sign((w_y − w_other)) (two
    classes).

    The sign of the gradient is constant, so PGD's steps of 2.5ε/steps carry every start to that
    corner of the ball; the box [0, 1] does not bind for inputs in [0.3, 0.7] and ε = 0.05.
    """
    torch.manual_seed(0)
    model = nn.Linear(20, 2, bias=False)
    x = 0.3 + 0.4 * torch.rand(16, 20)
    y = torch.randint(0, 2, (16,))
    eps = 0.05
    x_adv = pgd(model, x, lambda logits: F.cross_entropy(logits, y), eps, steps=5)
    w = model.weight.detach()
    direction = torch.sign(w[y] - w[1 - y])
    torch.testing.assert_close(x_adv, x - eps * direction, rtol=0, atol=1e-6)


def test_pgd_stays_in_the_ball_and_the_box():
    """Adversarial inputs stay within ε in ℓ∞ and inside [0, 1] even at the box's edge."""
    torch.manual_seed(1)
    model = build("resnet9").eval()
    x = torch.rand(4, 3, 32, 32).round()  # every pixel at 0 or 1
    y = torch.randint(0, 10, (4,))
    x_adv = pgd(model, x, lambda logits: F.cross_entropy(logits, y), 8 / 255, steps=3)
    assert (x_adv - x).abs().max() <= 8 / 255 + 1e-7
    assert x_adv.min() >= 0 and x_adv.max() <= 1


@pytest.mark.parametrize("regime", [Regime("standard"), Regime("noise", sigma=0.1),
                                    Regime("pgd", eps=8 / 255, steps=2),
                                    Regime("trades", eps=8 / 255, steps=2)],
                         ids=lambda r: r.kind)
def test_regimes_give_finite_losses_and_gradients(regime):
    """Each regime's loss is finite and has finite gradients; the model is left in training mode."""
    torch.manual_seed(2)
    model = build("densenet").train()
    x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
    loss = training_loss(model, x, y, regime)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert model.training  # the attack's eval-mode switch is undone



def test_build_order_lists_every_zoo_model_once():
    """The build takes every planned model exactly once; each family has the four regimes."""
    from leaderboard.zoo import BUILD_ORDER

    assert sorted(BUILD_ORDER) == sorted(ZOO) and len(set(BUILD_ORDER)) == len(BUILD_ORDER) >= 16
    for family in ARCHITECTURES:
        kinds = {(m.regime.kind, m.regime.norm, round(m.regime.eps * 255, 3), m.regime.sigma)
                 for m in ZOO.values() if m.architecture == family}
        assert (
            {("standard", "Linf", 0, 0), ("noise", "Linf", 0, 0.1), ("pgd", "Linf", 2, 0),
             ("pgd", "Linf", 8, 0)} <= kinds
        )
    assert any(m.regime.kind == "trades" for m in ZOO.values())
    assert any(m.regime.kind == "pgd" and m.regime.norm == "L2" for m in ZOO.values())


def test_l2_pgd_reaches_the_exact_worst_case_of_a_linear_model():
    """For two-class logits W x the ℓ2 worst case of the cross-entropy is x − ε·(w_y − w_other)/‖w_y
    − w_other‖.

    Every step moves along that fixed direction and the projection rescales onto the sphere, so
    from a start near x (TRADES' 0.001·N(0, I)) PGD ends at the pole up to the start's
    perpendicular part (about 0.001 per coordinate, shrunk by the projections: within 2e-3);
    inputs in [0.3, 0.7] keep the box from binding. From a uniform start in the ball the
    perpendicular part only decays geometrically (by ε/‖δ‖ per step), so after 8 steps the end
    point is checked on the sphere and within 20 degrees of the pole.
    """
    torch.manual_seed(3)
    model = nn.Linear(20, 2, bias=False)
    x = 0.3 + 0.4 * torch.rand(16, 20)
    y = torch.randint(0, 2, (16,))
    eps = 0.1
    w = model.weight.detach()
    direction = (w[y] - w[1 - y]) / (w[y] - w[1 - y]).norm(dim=1, keepdim=True)
    loss = lambda logits: F.cross_entropy(logits, y)  # noqa: E731
    x_adv = pgd(model, x, loss, eps, steps=8, norm="L2", start="normal")
    torch.testing.assert_close(x_adv, x - eps * direction, rtol=0, atol=2e-3)
    delta = pgd(model, x, loss, eps, steps=8, norm="L2") - x
    torch.testing.assert_close(delta.norm(dim=1), torch.full((16,), eps), rtol=0, atol=1e-6)
    assert ((-delta * direction).sum(1) / eps > math.cos(math.radians(20))).all()


def test_l2_pgd_stays_in_the_ball_and_the_box():
    torch.manual_seed(4)
    model = build("vgg").eval()
    x = torch.rand(4, 3, 32, 32).round()
    y = torch.randint(0, 10, (4,))
    x_adv = pgd(model, x, lambda logits: F.cross_entropy(logits, y), 0.5, steps=3, norm="L2")
    assert ((x_adv - x).flatten(1).norm(dim=1) <= 0.5 + 1e-5).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1


def test_load_model_round_trips_the_float16_weights(tmp_path):
    """load_model returns the saved network (to float16 rounding), in eval mode; unknown or
    untrained names fail clearly.
    """
    from leaderboard.zoo import load_model
    from leaderboard.zoo.weights import save_weights, weights_path

    torch.manual_seed(5)
    model = build("resnet9").eval()
    save_weights(model, weights_path("resnet9_standard", tmp_path))
    loaded = load_model("resnet9_standard", tmp_path)
    assert not loaded.training and all(p.dtype == torch.float32 for p in loaded.parameters())
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x), model.half().float()(x), rtol=1e-4, atol=1e-4)
    with pytest.raises(KeyError, match="not a zoo model"):
        load_model("resnet9_nonsense", tmp_path)
    with pytest.raises(FileNotFoundError, match="leaderboard.zoo.build train --models "
                       "vgg_standard"):
        load_model("vgg_standard", tmp_path)


def _tiny_training(checkpoint=None):
    """Three epochs of PGD training on 48 images: every random stream the schedule uses is
    exercised.
    """
    torch.manual_seed(0)
    model = build("resnet9")
    generator = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (48, 3, 32, 32), dtype=torch.uint8, generator=generator)
    y = torch.randint(0, 10, (48,), generator=generator)
    stats = train(model, x, y, Regime("pgd", eps=8 / 255), epochs=3, batch_size=16, lr=0.05,
                  seed=3, verbose=False, checkpoint=checkpoint)
    return model, stats


def test_interrupted_training_resumes_to_the_same_weights(tmp_path, monkeypatch):
    """A run stopped after its first epoch, then rerun, matches an unbroken run bit for bit."""
    from leaderboard.zoo import training_state

    reference, _ = _tiny_training()
    checkpoint = tmp_path / "state" / "model.pt"
    save = training_state.save

    def save_then_stop(path, state):
        save(path, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(training_state, "save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        _tiny_training(checkpoint)
    assert torch.load(checkpoint, weights_only=True)["epochs_done"] == 1
    monkeypatch.setattr(training_state, "save", save)
    resumed, stats = _tiny_training(checkpoint)
    for name, value in reference.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    assert stats["train_seconds"] > 0

    # The last epoch is kept too: a stop between training and storing the weights loses nothing.
    assert torch.load(checkpoint, weights_only=True)["epochs_done"] == 3
    monkeypatch.setattr("leaderboard.zoo.training.training_loss",
                        lambda *a: pytest.fail("trained again"))
    finished, again = _tiny_training(checkpoint)
    for name, value in reference.state_dict().items():
        assert torch.equal(value, finished.state_dict()[name]), name
    assert again["final_loss"] == stats["final_loss"]


@pytest.mark.parametrize("stale", ["other settings", "truncated"])
def test_a_stale_or_unreadable_checkpoint_is_not_resumed(tmp_path, caplog, stale):
    """A checkpoint of other settings, or a truncated file, is ignored with a warning: training
    starts afresh.
    """
    reference, _ = _tiny_training()
    checkpoint = tmp_path / "model.pt"
    if stale == "other settings":
        torch.save({"settings": {"epochs": 99}, "epochs_done": 2}, checkpoint)
    else:
        _tiny_training(checkpoint)
        checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    with caplog.at_level("WARNING"):
        fresh, _ = _tiny_training(checkpoint)
    assert "training from the start" in caplog.text
    for name, value in reference.state_dict().items():
        assert torch.equal(value, fresh.state_dict()[name]), name
