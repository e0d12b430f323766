"""Result files for the render tests, written as ``run`` writes them."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def write_result(root: Path, name: str, autoattack: float | None, lam: float, status: str = "ok",
                 predicted: float | None = None, method: str = "exact",
                 **fields: Any) -> Path:
    """Write a small result JSON of ``cifar10/Linf`` as ``run`` would; ``fields`` override."""
    summary = {"n": 8.0, "mean": 2 * lam, "median": lam, "mean_log10": math.log10(lam), "std": 0.1}
    record = {
        "model": name, "dataset": "cifar10", "threat_model": "Linf", "status": status,
        "error": None if status == "ok" else "Traceback ...\nRuntimeError: out of memory",
        "reported": {"clean_acc": 40.0 + lam, "autoattack_acc": autoattack,
                     "architecture": "WideResNet-28-10",
                     "eps": "8/255", "additional_data": False, "venue": ""},
        "n_examples": 8, "clean_acc": 75.0,
        "fisher": {"spectral_norm": summary, "trace": summary} if status == "ok" else None,
        "predicted_robust_acc": {"Linf": {"eps": 8 / 255, "first_order": predicted},
                                 "L2": {"eps": 0.5, "first_order": 99.0}} if status == "ok"
                                 else None,
        "seconds": {"load": 0.1, "fisher": 0.2, "total": 0.3}, "images_per_second": 10.0,
        "method": method, "batch_size": 8, "device": "cpu", "seed": 0, "versions": {},
    }
    record.update(fields)
    path = root / record["dataset"] / record["threat_model"] / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def peer_summary(score: float, seconds_per_image: float, higher_is_robust: bool,
                 n: int = 8) -> dict[str, Any]:
    """A peer baseline's summary as ``run`` stores it (per-image values left out)."""
    return {"n": n, "median": score, "score": score, "seconds": seconds_per_image * n,
            "seconds_per_image": seconds_per_image, "higher_is_robust": higher_is_robust}


#: Five ℓ∞ models: (name, AutoAttack %, median λ_max, predicted %, GREAT Score, logit margin,
#: gradient norm). λ_max and the prediction rank them exactly as AutoAttack does (|ρ| = 1), the
#: logit margin and the gradient norm (its mirror image) swap one pair (|ρ| = 0.9) and are the
#: five points of ``tests/test_calibration.py``'s hand-computed leave-one-out (shifted by −3 for
#: the margin, which is negative where a model is mostly wrong: the isotonic fit's linear
#: interpolation is the same under a shift), GREAT Score hardly tracks it (ρ = −0.1).
PEER_MODELS = (
    ("P0", 10.0, 50.0, 12.0, 0.5, -2.0, 5.0),
    ("P1", 30.0, 9.0, 27.0, 0.9, -1.0, 4.0),
    ("P2", 20.0, 20.0, 21.0, 0.2, 0.0, 3.0),
    ("P3", 40.0, 2.0, 44.0, 0.3, 1.0, 2.0),
    ("P4", 50.0, 0.5, 49.0, 0.4, 2.0, 1.0),
)


def write_peer_results(root: Path, proven: dict[str, float] | None = None) -> None:
    """:data:`PEER_MODELS` with their peers and costs (AutoAttack 1 s per image, the Fisher pass
    0.025); ``proven`` gives a model's proven percentage at ℓ∞ (every other one's is 100).
    """
    proven = proven or {}
    for name, autoattack, lam, predicted, great, margin, gradient in PEER_MODELS:
        prediction = {"eps": 8 / 255, "first_order": predicted,
                      "proven_first_order": proven.get(name, 100.0)}
        write_result(
            root, name, autoattack, lam, predicted=predicted,
            predicted_robust_acc={"Linf": prediction,
                                  "L2": {"eps": 0.5, "first_order": 99.0,
                                         "proven_first_order": 100.0}},
            baselines={"great_score": peer_summary(great, 0.005, True),
                       "logit_margin": peer_summary(margin, 0.002, True),
                       "gradient_norm": {"linf": peer_summary(gradient, 0.01, False),
                                         "l2": peer_summary(gradient, 0.01, False)}},
        )
        path = root / "cifar10" / "Linf" / f"{name}.json"
        record = json.loads(path.read_text())
        record["reported"].update(attack_seconds=100.0, attack_n_examples=100)
        path.write_text(json.dumps(record))
