"""The project's zoo as leaderboard entries: one per model and threat model it was attacked at.

``<zoo_dir>/model_info/cifar10/<threat_model>/<name>.json`` (written by
``python -m leaderboard.zoo.build attack``) holds the clean and standard-AutoAttack accuracy
measured here, on the first ``n_examples`` images of the bundled class-balanced test subset,
and the attack's wall time. Each such file becomes a :class:`~leaderboard.registry.ZooEntry`
whose ``reported`` figures are those measurements and whose architecture is the zoo plan's;
the weights are ``<zoo_dir>/models/<name>.pt`` (:func:`leaderboard.zoo.weights.load_model`).
Only models with a model-info file are entries, so the leaderboard covers whatever part of
the zoo has been built.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from torch import nn

from leaderboard.record import Reported
from leaderboard.registry import ZooEntry, resolve_names
from leaderboard.zoo.plan import BUILD_ORDER, ZOO
from leaderboard.zoo.weights import ZOO_DIR, load_model, weights_path

DATASET = "cifar10"
ZOO_THREAT_MODELS = ("Linf", "L2")


def _reported(info: dict[str, Any], threat: str, architecture: str) -> Reported:
    """The ``reported`` block of a zoo entry, from its model-info file (percent floats)."""
    eps = info.get("eps")
    if isinstance(eps, (int, float)):  # written as RobustBench writes budgets: "8/255", "0.5"
        eps = f"{eps * 255:.3g}/255" if threat == "Linf" else f"{eps:.3g}"
    return Reported(
        clean_acc=float(info["clean_acc"]),
        autoattack_acc=float(info["autoattack_acc"]),
        aa_source="autoattack_acc",
        architecture=architecture,
        eps=eps,
        additional_data=False,
        venue="this project's zoo",
        unreliable=False,
        attack_seconds=info.get("attack_seconds"),
        attack_n_examples=info.get("n_examples"),
    )


def zoo_entries(zoo_dir: str | Path = ZOO_DIR, models: list[str] | None = None) -> list[ZooEntry]:
    """Entries of every zoo model with a model-info file, in build order, Linf before L2.

    Args:
        zoo_dir: folder holding ``models/`` and ``model_info/``.
        models: names to keep (default: all that have model-info files), matched without regard
            to case.

    Raises:
        UnknownModelError: a name in ``models`` is not a zoo model (with close names offered).
        FileNotFoundError: ``zoo_dir`` has no ``model_info/cifar10`` folder.
    """
    root = Path(zoo_dir) / "model_info" / DATASET
    if not root.is_dir():
        raise FileNotFoundError(
            f"{root} does not exist: the zoo's AutoAttack results are written there by "
            "`python -m leaderboard.zoo.build attack` (or pass the zoo folder with --model-dir)"
        )
    chosen = None if models is None else set(
        resolve_names(models, ZOO, "the project's zoo",
                      "`python -m leaderboard list --source zoo` shows its models.")
    )
    names = [n for n in BUILD_ORDER if chosen is None or n in chosen]
    entries = []
    for name in names:
        for threat in ZOO_THREAT_MODELS:
            path = root / threat / f"{name}.json"
            if path.is_file():
                info = json.loads(path.read_text())
                entries.append(ZooEntry(name, DATASET, threat,
                                        _reported(info, threat, ZOO[name].architecture)))
    return entries


def zoo_weights_present(entry: ZooEntry, zoo_dir: str | Path = ZOO_DIR) -> bool:
    """Whether the entry's float16 state dict is under ``zoo_dir/models``."""
    return weights_path(entry.name, Path(zoo_dir)).is_file()


def load_zoo_entry(
    entry: ZooEntry, zoo_dir: str | Path = ZOO_DIR
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """The entry's model and its checkpoint's file, SHA-256 and size.

    The model is float32, in eval mode, and takes ``[0, 1]`` inputs.
    """
    path = weights_path(entry.name, Path(zoo_dir))
    model = load_model(entry.name, Path(zoo_dir))
    data = path.read_bytes()
    return model, [{"file": path.name, "sha256": hashlib.sha256(data).hexdigest(),
                    "bytes": len(data)}]
