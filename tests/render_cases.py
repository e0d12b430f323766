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
