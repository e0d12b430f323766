"""The sandwich check: certified robust accuracy ≤ AutoAttack robust accuracy, per zoo model.

For every zoo model with an AutoAttack measurement (``<zoo-dir>/model_info/cifar10/{Linf,L2}/
<name>.json``), on the same bundled test images AutoAttack ran on: the ℓ2 Lipschitz bound ``L``
of the logits on [0, 1] pixels (``art_fim.lipschitz_bound``), the certified robust accuracy at
the model-info ε (correct and ``margin > √2 L ε₂``, ε₂ = ε for ℓ2, √d ε for ℓ∞: a lower bound on
every attack's robust accuracy), AutoAttack's robust accuracy (an upper bound on the true one)
and, beside them, the attack-free predicted robust accuracy (the first-order radius). A
certified value above AutoAttack's means a bug in the bound or in the attack
(:func:`violations`). ``benchmarks/certified_sandwich.py`` prints the table.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from art_fim import predicted_robust_accuracy
from art_fim.lipschitz import certified_accuracy, certified_radius, lipschitz_bound
from leaderboard.data import bundled_cifar10

THREATS = {"Linf": (np.inf, 8 / 255), "L2": (2, 0.5)}


def measured_models(zoo_dir: Path) -> list[tuple[str, str, dict]]:
    """``(name, threat, model_info)`` for every AutoAttack measurement in ``zoo_dir``."""
    found = []
    for threat in THREATS:
        for path in sorted((zoo_dir / "model_info" / "cifar10" / threat).glob("*.json")):
            found.append((path.stem, threat, json.loads(path.read_text())))
    return found


def sandwich_row(model: Any, bound: float, x: np.ndarray, y: np.ndarray, threat: str,
                 eps: float, predicted: bool = True) -> dict:
    """Certified (and, with ``predicted``, predicted) robust accuracy at one threat, percent.

    The predicted accuracy is for the table beside the check: it costs a Fisher pass, which the
    certified-below-AutoAttack check itself does not need.
    """
    norm, _ = THREATS[threat]
    row = {"threat": threat, "eps": eps, "n": len(x),
           "certified": 100.0 * certified_accuracy(model, x, y, eps, norm=norm, bound=bound),
           "median_radius": float(np.median(certified_radius(model, x, bound)))}
    if predicted:
        row["predicted"] = (
            100.0 * float(predicted_robust_accuracy(model, x, y, eps, norm=norm, verbose=False))
        )
    return row


def zoo_rows(zoo_dir: Path, predicted: bool = True) -> list[dict]:
    """One row per AutoAttack-measured zoo model and threat (``predicted``: see above)."""
    from leaderboard.zoo import load_model

    rows, bounds = [], {}
    for name, threat, info in measured_models(zoo_dir):
        model = load_model(name, zoo_dir)
        if name not in bounds:
            start = time.perf_counter()
            bounds[name] = (lipschitz_bound(model, (3, 32, 32), input_box=(0.0, 1.0)),
                            time.perf_counter() - start)
        bound, seconds = bounds[name]
        x, y = bundled_cifar10(int(info["n_examples"]))
        row = sandwich_row(model, bound.value, x, y, threat, float(info["eps"]), predicted)
        clean = float(np.mean(_predict(model, x).argmax(1) == y)) * 100
        row.update(name=name, lipschitz=bound.value, bound_seconds=seconds, clean=clean,
                   autoattack=float(info["autoattack_acc"]))
        rows.append(row)
    return rows


def _predict(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def violations(rows: list[dict]) -> list[dict]:
    """Rows whose certified accuracy exceeds AutoAttack's (a bug in the bound or the attack)."""
    return [r for r in rows if not math.isnan(r["autoattack"]) and r["certified"] > r["autoattack"]]
