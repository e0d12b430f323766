"""The RobustBench zoo joined with the shipped model_info snapshot.

Every zoo entry (206 in robustbench 1.1.1) gets its reported clean and AutoAttack accuracy
from ``leaderboard/model_info`` (see its ``PROVENANCE.md``). As on RobustBench's own
leaderboard, an ``external`` evaluation replaces ``autoattack_acc`` when present.
"""

from __future__ import annotations

import difflib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from leaderboard import robustbench_compat as rb

logger = logging.getLogger(__name__)

MODEL_INFO_DIR = Path(__file__).resolve().parent / "model_info"
DATASETS = ("cifar10", "cifar100", "imagenet")
THREAT_MODELS = ("Linf", "L2", "corruptions")


@dataclass(frozen=True)
class Reported:
    """RobustBench's published figures for one model (percent floats).

    Attributes:
        clean_acc: reported clean accuracy.
        autoattack_acc: reported robust accuracy: ``external`` if present, else ``autoattack_acc``.
        aa_source: ``"external"``, ``"autoattack_acc"`` or ``None`` (no robust accuracy).
        architecture: e.g. ``"WideResNet-28-10"``.
        eps: perturbation budget as RobustBench writes it (``"8/255"``), ``None`` for corruptions.
        additional_data: trained with extra data.
        venue: publication venue (``""`` in the snapshot means unpublished).
        unreliable: RobustBench flags the evaluation as unreliable.
        attack_seconds: wall time of the AutoAttack run behind ``autoattack_acc``, where known
            (the project's zoo records it; RobustBench does not).
        attack_n_examples: images that AutoAttack run attacked, where known.
    """

    clean_acc: float | None = None
    autoattack_acc: float | None = None
    aa_source: str | None = None
    architecture: str | None = None
    eps: str | None = None
    additional_data: bool | None = None
    venue: str | None = None
    unreliable: bool | None = None
    attack_seconds: float | None = None
    attack_n_examples: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``reported`` block of a result file."""
        return asdict(self)


@dataclass(frozen=True)
class ZooEntry:
    """One model to score.

    A RobustBench zoo model, or one of the project's own zoo (:mod:`leaderboard.zoo`).

    Attributes:
        name: zoo name.
        dataset: ``"cifar10"``, ``"cifar100"`` or ``"imagenet"``.
        threat_model: ``"Linf"``, ``"L2"`` or ``"corruptions"``.
        reported: the snapshot's figures.
        num_checkpoints: checkpoint files (more than one for ensembles).
    """

    name: str
    dataset: str
    threat_model: str
    reported: Reported
    num_checkpoints: int = 1

    @property
    def key(self) -> str:
        """``dataset/threat_model/name``."""
        return f"{self.dataset}/{self.threat_model}/{self.name}"


def _parse_percent(value: Any) -> float | None:
    """A percentage from the snapshot's JSON as a float; ``None`` when absent or unparsable."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        logger.warning("unparsable accuracy %r in the model_info snapshot", value)
        return None


def reported_for(name: str, dataset: str, threat_model: str) -> Reported:
    """Parse the snapshot's JSON for a model (all fields ``None`` if it has none)."""
    path = MODEL_INFO_DIR / dataset / threat_model / f"{name}.json"
    if not path.is_file():
        return Reported()
    info = json.loads(path.read_text())
    external = _parse_percent(info.get("external"))
    autoattack = _parse_percent(info.get("autoattack_acc"))
    robust, source = (
        (external, "external") if external is not None else (autoattack, "autoattack_acc")
    )
    return Reported(
        clean_acc=_parse_percent(info.get("clean_acc")),
        autoattack_acc=robust,
        aa_source=source if robust is not None else None,
        architecture=info.get("architecture"),
        eps=info.get("eps"),
        additional_data=info.get("additional_data"),
        venue=info.get("venue"),
        unreliable=info.get("unreliable"),
    )


def _selection(value: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    if value == "all":
        return allowed
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(allowed)} or all")
    return (value,)


def list_entries(dataset: str = "all", threat_model: str = "all") -> list[ZooEntry]:
    """Zoo entries for a dataset and threat model (``"all"`` for every one), in zoo order."""
    entries = []
    for ds in _selection(dataset, DATASETS, "dataset"):
        for tm in _selection(threat_model, THREAT_MODELS, "threat model"):
            for name, spec in rb.robustbench_entries(ds, tm).items():
                gdrive = spec.get("gdrive_id")
                count = len(gdrive) if isinstance(gdrive, list) else 1
                entries.append(ZooEntry(name, ds, tm, reported_for(name, ds, tm), count))
    return entries


def select_entries(dataset: str, threat_model: str, models: list[str] | None) -> list[ZooEntry]:
    """Entries to score: all of the selection, or the named ones in the order given.

    Raises:
        UnknownModelError: a name is not in the zoo (with close matches).
    """
    entries = list_entries(dataset, threat_model)
    if not models:
        return entries
    by_name: dict[str, list[ZooEntry]] = {}
    for entry in entries:
        by_name.setdefault(entry.name, []).append(entry)
    chosen = []
    for name in models:
        if name not in by_name:
            close = difflib.get_close_matches(name, list(by_name), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise rb.UnknownModelError(
                f"{name!r} is not in RobustBench's zoo for dataset={dataset}, "
                f"threat model={threat_model}.{hint} `python -m leaderboard list` shows the zoo."
            )
        chosen.extend(by_name[name])
    return chosen


def robustbench_weights_present(entry: ZooEntry, model_dir: str | Path) -> bool:
    """Whether the entry's checkpoint files are under ``model_dir`` (RobustBench layout).

    The project's own zoo has :func:`leaderboard.zoo.entries.zoo_weights_present`.
    """
    return rb.weights_present(entry.name, entry.dataset, entry.threat_model, model_dir)
