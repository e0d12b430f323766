"""Seeded CIFAR-10 training: standard, PGD adversarial, TRADES and Gaussian-noise regimes.

* PGD adversarial training (Madry et al., 2018, https://arxiv.org/abs/1706.06083): minimise
  the cross-entropy at ``x + δ*``, ``δ*`` from ``steps`` of projected sign-gradient ascent in
  the ℓ∞ ball of radius ``eps``, from a uniform random start.
* TRADES (Zhang et al., 2019, https://arxiv.org/abs/1901.08573): ``CE(f(x), y) +
  β · KL(p(x) ‖ p(x + δ*))``, ``δ*`` maximising the KL term.
* Gaussian augmentation: ``x + N(0, σ²I)``, clipped to [0, 1].

Inputs are [0, 1] pixels; the networks normalise inside (see ``architectures.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from leaderboard.zoo import training_state

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Regime:
    """How a model is trained.

    Attributes:
        kind: ``"standard"``, ``"pgd"``, ``"trades"`` or ``"noise"``.
        eps: radius of the training attack (``pgd``, ``trades``), in [0, 1] pixel units.
        norm: threat model of the training attack, ``"Linf"`` or ``"L2"``.
        steps: attack steps during training (step size ``2.5 · eps / steps``).
        beta: TRADES trade-off weight.
        sigma: standard deviation of the Gaussian augmentation (``noise``).
    """

    kind: str = "standard"
    eps: float = 0.0
    norm: str = "Linf"
    steps: int = 2
    beta: float = 6.0
    sigma: float = 0.0


def _per_sample_l2(t: Tensor) -> Tensor:
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).reshape(-1, *[1] * (t.dim() - 1))


def _project(delta: Tensor, eps: float, norm: str) -> Tensor:
    if norm == "Linf":
        return delta.clamp(-eps, eps)
    return delta * (eps / _per_sample_l2(delta)).clamp(max=1.0)


def pgd(
    model: nn.Module,
    x: Tensor,
    loss_fn: Callable[[Tensor], Tensor],
    eps: float,
    steps: int,
    *,
    norm: str = "Linf",
    start: str = "uniform",
) -> Tensor:
    """Projected gradient ascent on ``loss_fn(model(x + δ))``.

    The ascent is over ``‖δ‖ ≤ eps`` with ``x + δ ∈ [0, 1]``.
    Each step moves ``2.5 · eps / steps`` along the steepest-ascent direction of the norm (the
    gradient's sign for ℓ∞, the normalised gradient for ℓ2), then projects back onto the ball
    and the box (Madry et al., 2018, https://arxiv.org/abs/1706.06083). ``start`` is
    ``"uniform"``, a random point of the ball (uniform per coordinate for ℓ∞, a uniformly
    random direction at a uniform radius for ℓ2), or ``"normal"``, ``0.001 · N(0, I)`` (TRADES).

    Raises:
        ValueError: ``norm`` is neither ``"Linf"`` nor ``"L2"``.
    """
    if norm not in ("Linf", "L2"):
        raise ValueError(f"norm must be 'Linf' or 'L2', got {norm!r}")
    step = 2.5 * eps / steps
    if start == "normal":
        delta = 0.001 * torch.randn_like(x)
    elif norm == "Linf":
        delta = torch.empty_like(x).uniform_(-eps, eps)
    else:
        direction = torch.randn_like(x)
        radius = eps * torch.rand(len(x), device=x.device).reshape(-1, *[1] * (x.dim() - 1))
        delta = direction / _per_sample_l2(direction) * radius
    delta = ((x + _project(delta, eps, norm)).clamp(0, 1) - x).detach()
    for _ in range(steps):
        delta.requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_fn(model(x + delta)), delta)
        ascent = grad.sign() if norm == "Linf" else grad / _per_sample_l2(grad)
        delta = _project(delta + step * ascent, eps, norm)
        delta = ((x + delta).clamp(0, 1) - x).detach()
    return (x + delta).detach()


def _attack_in_eval_mode(model: nn.Module, attack: Callable[[], Tensor]) -> Tensor:
    # The attack's forward passes must not move batch-norm running statistics (as in TRADES).
    model.eval()
    try:
        return attack()
    finally:
        model.train()


def training_loss(model: nn.Module, x: Tensor, y: Tensor, regime: Regime) -> Tensor:
    """The regime's loss on one batch (the model is in training mode)."""
    if regime.kind == "standard":
        return F.cross_entropy(model(x), y)
    if regime.kind == "noise":
        return F.cross_entropy(model((x + regime.sigma * torch.randn_like(x)).clamp(0, 1)), y)
    if regime.kind == "pgd":
        x_adv = _attack_in_eval_mode(
            model,
            lambda: pgd(model, x, lambda logits: F.cross_entropy(logits, y), regime.eps,
                        regime.steps, norm=regime.norm),
        )
        return F.cross_entropy(model(x_adv), y)
    if regime.kind == "trades":
        with torch.no_grad():
            p_clean = F.softmax(_attack_in_eval_mode(model, lambda: model(x)), dim=-1).float()

        def kl_to_clean(logits: Tensor) -> Tensor:
            return F.kl_div(F.log_softmax(logits.float(), dim=-1), p_clean, reduction="batchmean")

        x_adv = _attack_in_eval_mode(
            model, lambda: pgd(model, x, kl_to_clean, regime.eps, regime.steps, norm=regime.norm,
                               start="normal")
        )
        logits = model(x)
        return F.cross_entropy(logits, y) + regime.beta * F.kl_div(
            F.log_softmax(model(x_adv).float(), dim=-1), F.softmax(logits.float(), dim=-1),
            reduction="batchmean"
        )
    raise ValueError(f"unknown regime {regime.kind!r}; choose standard, pgd, trades or noise")


def augment(x: Tensor, generator: torch.Generator) -> Tensor:
    """Random horizontal flips and random 32×32 crops of the 4-pixel reflection-padded image."""
    flip = torch.rand(len(x), generator=generator, device="cpu").to(x.device) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    padded = F.pad(x, (4, 4, 4, 4), mode="reflect")
    i, j = (int(v) for v in torch.randint(0, 9, (2,), generator=generator))
    return padded[:, :, i : i + 32, j : j + 32]


def train(
    model: nn.Module,
    x_train: Tensor,
    y_train: Tensor,
    regime: Regime,
    *,
    epochs: int,
    batch_size: int = 512,
    lr: float = 0.1,
    optimizer: str = "sgd",
    seed: int = 0,
    device: torch.device | str = "cpu",
    verbose: bool = True,
    checkpoint: Path | None = None,
) -> dict[str, float]:
    """Train ``model`` in place with a one-cycle schedule; return timing and the last loss.

    With ``checkpoint``, the whole training state (:mod:`leaderboard.zoo.training_state`) is
    saved there after every epoch, the last included, and a run that finds a checkpoint of the
    same settings resumes from it: an interrupted run loses at most the epoch in progress and
    ends with the same weights as an uninterrupted one (on the CPU, whose kernels are
    deterministic). The file is left in place: the caller deletes it once the weights are
    stored. ``train_seconds`` adds up the epochs that were kept, over every resumed run.

    Args:
        model: the network (moved to ``device``).
        x_train: ``[N, 3, 32, 32]`` uint8 or float images.
        y_train: ``[N]`` labels.
        regime: the training regime.
        epochs: passes over the data.
        batch_size: images per step.
        lr: peak learning rate.
        optimizer: ``"sgd"`` (Nesterov, weight decay 5e-4) or ``"adamw"`` (weight decay 0.05).
        seed: seeds the initial shuffle, augmentation and attack starts.
        device: where to train; on CUDA the forward passes run under bf16 autocast.
        verbose: show a progress bar.
        checkpoint: where to keep the resumable training state (``None``: nowhere).

    Returns:
        ``{"train_seconds": ..., "final_loss": ...}``.
    """
    device = torch.device(device)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model.to(device).train()
    x_all = x_train.to(device)
    y_all = y_train.to(device)
    steps_per_epoch = len(x_all) // batch_size
    if optimizer == "adamw":
        opt: torch.optim.Optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4,
                              nesterov=True)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr,
                                                   total_steps=max(1, epochs * steps_per_epoch))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    settings = {
        "architecture": type(model).__name__,
        "shapes": [[name, list(value.shape)] for name, value in model.state_dict().items()],
        "regime": asdict(regime), "epochs": epochs, "batch_size": batch_size, "lr": lr,
        "optimizer": optimizer, "seed": seed, "images": len(x_all), "device": device.type,
    }
    state = training_state.load(checkpoint, settings)
    first_epoch, earlier_seconds, final_loss = 0, 0.0, float("nan")
    if state is not None:
        training_state.restore(state, model, opt, schedule, generator, device)
        first_epoch, earlier_seconds, final_loss = (
            state["epochs_done"],
            state["seconds"],
            state["final_loss"],
        )
        logger.info("resuming %s after epoch %d of %d", checkpoint, first_epoch, epochs)
    start = time.perf_counter()
    with tqdm(total=epochs * steps_per_epoch, initial=first_epoch * steps_per_epoch,
              desc=f"train ({regime.kind})", disable=not verbose) as bar:
        for epoch in range(first_epoch, epochs):
            order = torch.randperm(len(x_all), generator=generator).to(device)
            for step in range(steps_per_epoch):
                idx = order[step * batch_size : (step + 1) * batch_size]
                xb = x_all[idx]
                xb = augment(xb.float() / 255 if xb.dtype == torch.uint8 else xb, generator)
                with autocast:
                    loss = training_loss(model, xb, y_all[idx], regime)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                schedule.step()
                final_loss = float(loss.item())
                bar.update(1)
                bar.set_postfix(loss=f"{final_loss:.3f}", refresh=False)
            if checkpoint is not None:
                training_state.save(checkpoint, {
                    "settings": settings, "epochs_done": epoch + 1, "final_loss": final_loss,
                    "seconds": earlier_seconds + time.perf_counter() - start,
                    **training_state.capture(model, opt, schedule, generator, device),
                })
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    model.eval()
    return {"train_seconds": earlier_seconds + time.perf_counter() - start,
            "final_loss": final_loss}


def _pixel_batches(model: nn.Module, x: Tensor, y: Tensor,
                   batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
    """``(x, y)`` batches on the model's device, uint8 images scaled to [0, 1] floats."""
    device = next(model.parameters()).device
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device)
        yield (xb.float() / 255 if xb.dtype == torch.uint8
               else xb), y[start : start + batch_size].to(device)


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy in percent on [0, 1] inputs (eval mode, float32)."""
    model.eval()
    correct = sum(int((model(xb).argmax(1) == yb).sum())
                  for xb, yb in _pixel_batches(model, x, y, batch_size))
    return 100.0 * correct / len(x)


def pgd_accuracy(
    model: nn.Module, x: Tensor, y: Tensor, *, eps: float, norm: str = "Linf", steps: int = 10,
    batch_size: int = 500
) -> float:
    """Top-1 accuracy in percent under a ``steps``-step PGD attack on the cross-entropy (eval mode).

    A check for catastrophic overfitting (Wong et al., 2020, https://arxiv.org/abs/2001.03994):
    a model trained with a 1–2 step attack that has learnt to mask its gradient keeps its
    accuracy under the training attack but loses it under a 10-step one.
    """
    model.eval()
    correct = 0
    for xb, yb in _pixel_batches(model, x, y, batch_size):
        x_adv = pgd(model, xb, lambda logits, yb=yb: F.cross_entropy(logits, yb), eps, steps,
                    norm=norm)
        with torch.no_grad():
            correct += int((model(x_adv).argmax(1) == yb).sum())
    return 100.0 * correct / len(x)
