"""Standard AutoAttack accuracy (Croce & Hein, 2020, https://arxiv.org/abs/2003.01690).

The ``standard`` version runs APGD-CE, APGD-T, FAB-T and Square in sequence, each on the
points still classified correctly; its accuracy is what RobustBench reports. This uses the
PyPI package ``pyautoattack`` (import name ``pyautoattack``).

Resuming: the sequence is run here one attack at a time, each on the points every earlier
attack left robust, and the robust flags are saved after each. That is the same computation
as AutoAttack's own loop (each attack is re-seeded before it runs and sees the same points in
the same order and batches), so a resumed run ends where an unbroken one ends: bit for bit on
CPU, up to CUDA's non-deterministic kernels on a GPU. pyautoattack 0.2.0's
own ``state_path`` cannot resume: it saves the attack set as ``str(set)`` and never parses it
back, and a resumed run hits an unbound ``y_adv`` as soon as an attack succeeds.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch
from torch import Tensor, nn

from art_fim.precision import precision_context
from leaderboard.store import write_bytes_atomic

THREATS: dict[str, float] = {"Linf": 8 / 255, "L2": 0.5}


def autoattack_accuracy(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    norm: str,
    eps: float | None = None,
    batch_size: int = 500,
    seed: int = 0,
    device: torch.device | str = "cpu",
    state_path: Path | None = None,
) -> dict[str, float]:
    """Robust accuracy (percent) under standard AutoAttack.

    Args:
        model: classifier on [0, 1] inputs, in eval mode.
        x: ``[N, 3, H, W]`` float inputs in [0, 1].
        y: ``[N]`` labels.
        norm: ``"Linf"`` or ``"L2"``.
        eps: radius; default 8/255 (ℓ∞) or 0.5 (ℓ2), RobustBench's CIFAR-10 settings.
        batch_size: attack batch size.
        seed: AutoAttack's seed.
        device: where to attack.
        state_path: a JSON file of the attacks finished and the per-point robust flags, written
            after every attack; a run that finds it resumes at the next attack. It is tied to
            the settings, the inputs and the model's weights: a file made with others is refused.

    Returns:
        ``{"autoattack_acc": ..., "clean_acc": ..., "eps": ..., "seconds": ..., "n": ...,
        "precision": ...}`` (percent); ``seconds`` adds up the runs that made the result, the attack
        interrupted in a stopped run not counted (it is run again).
    """
    # Full float32 on every device (no TF32 convolutions on a GPU), as on the CPU.
    with precision_context("float32"):
        return _autoattack_accuracy(model, x, y, norm=norm, eps=eps, batch_size=batch_size,
                                    seed=seed,
                                    device=device, state_path=state_path)


def _autoattack_accuracy(
    model: nn.Module, x: Tensor, y: Tensor, *, norm: str, eps: float | None, batch_size: int,
    seed: int,
    device: torch.device | str, state_path: Path | None,
) -> dict[str, float]:
    from pyautoattack import AutoAttack, checks

    eps = THREATS[norm] if eps is None else eps
    model = model.to(device).eval()
    # pyautoattack's gradient check needs contiguous NCHW tensors.
    x = x.to(device).float().contiguous()
    y = y.to(device)
    start = time.perf_counter()
    adversary = AutoAttack(model, norm=norm, eps=eps, version="standard", device=device, seed=seed)
    attacks = list(adversary.attacks_to_run)
    settings = {"norm": norm, "eps": eps, "seed": seed, "batch_size": batch_size, "n": len(x),
                "attacks": attacks, "inputs_sha256": _sha256(x, y),
                "model_sha256": _sha256(*model.state_dict().values())}
    state = _load_state(state_path, settings)
    if state is None:
        with torch.no_grad():
            correct = torch.cat([model(xb).argmax(1) == yb
                                 for xb, yb in zip(x.split(batch_size), y.split(batch_size))])
        clean = int(correct.sum()) / len(x)  # exact, as a count, not a float32 mean
        state = {**settings, "done": [], "clean_acc": 100.0 * clean,
                 "robust": correct.cpu().tolist(),
                 "accuracy_after": {"clean": clean}, "seconds": 0.0}
    earlier_seconds = state["seconds"]
    _save_state(state_path, state)
    robust = torch.tensor(state["robust"], dtype=torch.bool, device=y.device)
    for attack in attacks:
        if attack in state["done"]:
            continue
        still = robust.nonzero().squeeze(1)
        if len(still):
            # AutoAttack's own loop runs this attack, re-seeded, on exactly these points.
            adversary.attacks_to_run = [attack]
            _, y_adv = adversary.run_standard_evaluation(x[still], y[still], batch_size=batch_size)
            robust[still] = y_adv == y[still]
        state["done"].append(attack)
        state["robust"] = robust.cpu().tolist()
        state["accuracy_after"][attack] = robust.float().mean().item()
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)
        state["seconds"] = earlier_seconds + time.perf_counter() - start
        _save_state(state_path, state)
    # AutoAttack's warning when Square, query-only, beats the gradient attacks (a sign of
    # gradient masking): its own check, on the accuracies after each attack.
    checks.check_square_sr(state["accuracy_after"], logger=adversary.logger)
    return {"autoattack_acc": 100.0 * robust.float().mean().item(), "clean_acc": state["clean_acc"],
            "eps": eps, "seconds": state["seconds"], "n": len(x), "precision": "float32"}


def _load_state(path: Path | None, settings: dict) -> dict | None:
    """The saved state if ``path`` holds one made with ``settings``; None when there is none."""
    if path is None or not path.exists():
        return None
    state = json.loads(path.read_text())
    if "_robust_flags" in state:
        raise ValueError(
            f"{path} was written by pyautoattack's own state, which cannot be resumed; "
            "delete it to start afresh"
        )
    differ = sorted(key for key in settings if state.get(key) != settings[key])
    if differ:
        raise ValueError(
            f"{path} was made with other {', '.join(differ)}; delete it to start afresh"
        )
    return state


def _sha256(*tensors: Tensor) -> str:
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _save_state(path: Path | None, state: dict) -> None:
    if path is not None:
        write_bytes_atomic(path, json.dumps(state).encode())
