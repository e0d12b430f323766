"""Helpers for the leaderboard tests: RobustBench-layout checkpoints made at test time.

Real zoo entries are built from RobustBench's own constructors with a seeded random
initialisation and saved where RobustBench's ``load_model`` would have downloaded them,
so the whole pipeline runs offline.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from leaderboard.robustbench_compat import checkpoint_paths, import_robustbench, robustbench_entry

# Three cheap CIFAR-10 Linf zoo entries of different architectures, all with AutoAttack accuracy.
E2E_MODELS = (
    "Wong2020Fast",  # PreActResNet-18
    "Ding2020MMA",  # WideResNet-28-4
    "Addepalli2022Efficient_RN18",  # ResNet-18
)


def require_robustbench() -> None:
    """Skip the calling test module when the leaderboard extra is not installed."""
    try:
        import_robustbench()
    except ImportError as exc:
        pytest.skip(f"leaderboard extra not installed: {exc}", allow_module_level=True)


def save_random_checkpoint(
    name: str, dataset: str, threat_model: str, model_dir: Path, seed: int = 0, wrap: bool = False
) -> torch.nn.Module:
    """Save a seeded random initialisation of a zoo model in RobustBench's layout.

    Args:
        name: zoo name of the model.
        dataset: its dataset (``"cifar10"``, ...).
        threat_model: its threat model (``"Linf"``, ...).
        model_dir: root of RobustBench's checkpoint layout.
        seed: seed of the random initialisation.
        wrap: save as ``{"state_dict": {"module." + key: ...}, "epoch": numpy scalar, "args":
            argparse.Namespace}``, the shape of published training checkpoints (torch's plain
            ``weights_only=True`` refuses it; the loader's allowlist admits exactly these types).

    Returns:
        The model whose weights were saved.
    """
    torch.manual_seed(seed)
    model = robustbench_entry(name, dataset, threat_model)["model"]().eval()
    path = checkpoint_paths(name, dataset, threat_model, model_dir)[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    if wrap:
        import argparse

        import numpy as np

        state = {
            "state_dict": {f"module.{k}": v for k, v in state.items()},
            "epoch": np.int64(200),
            "best_acc": np.float64(0.5),
            "args": argparse.Namespace(lr=0.1, epochs=200, arch=name),
        }
    torch.save(state, path)
    return model


def without_timing(record: dict) -> dict:
    """A result record's JSON without the keys that depend on the machine and the moment."""
    from leaderboard.record import ResultRecord

    return {k: v for k, v in record.items() if k not in ResultRecord.TIMING_KEYS}
