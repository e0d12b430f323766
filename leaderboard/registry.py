"""The RobustBench zoo joined with the shipped model_info snapshot.

Every zoo entry (206 in robustbench 1.1.1) gets its reported clean and AutoAttack accuracy
from ``leaderboard/model_info`` (see its ``PROVENANCE.md``). As on RobustBench's own
leaderboard, an ``external`` evaluation replaces ``autoattack_acc`` when present.
"""

from __future__ import annotations

import difflib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leaderboard.errors import UnknownModelError
from leaderboard.record import Reported

# robustbench_compat (torch, robustbench) is imported where RobustBench's zoo is read, so that
# the command line answers --help without loading them.

logger = logging.getLogger(__name__)

MODEL_INFO_DIR = Path(__file__).resolve().parent / "model_info"
DATASETS = ("cifar10", "cifar100", "imagenet")
THREAT_MODELS = ("Linf", "L2", "corruptions")


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
    from leaderboard import robustbench_compat as rb

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
    names = resolve_names(models, [e.name for e in entries],
                          f"RobustBench's zoo for dataset={dataset}, threat model={threat_model}",
                          "`python -m leaderboard list` shows the zoo.")
    return [e for name in names for e in entries if e.name == name]


def resolve_names(asked: Iterable[str], known: Iterable[str], where: str,
                  hint: str = "") -> list[str]:
    """The known names ``asked`` for, matched without regard to case, in the order asked.

    An exact match wins over one that differs in case only (names that differ only in case are
    then told apart by their case).

    Args:
        asked: the names given (``--models``).
        known: the names there are.
        where: what the names are looked up in, for the error (``"the project's zoo"``).
        hint: a sentence that follows the error (where to see the names).

    Raises:
        UnknownModelError: a name matches none; the message offers up to three close names.
    """
    known = list(dict.fromkeys(known))
    by_folded: dict[str, list[str]] = {}
    for name in known:
        by_folded.setdefault(name.casefold(), []).append(name)
    chosen = []
    for name in asked:
        matches = [name] if name in known else by_folded.get(name.casefold(), [])
        if len(matches) != 1:
            close = difflib.get_close_matches(name.casefold(), list(by_folded), n=3, cutoff=0.5)
            suggestions = [m for c in close for m in by_folded[c]] or matches
            did_you_mean = f" Did you mean {', '.join(suggestions)}?" if suggestions else ""
            raise UnknownModelError(f"{name!r} is not in {where}.{did_you_mean} {hint}".rstrip())
        chosen.append(matches[0])
    return chosen


def robustbench_weights_present(entry: ZooEntry, model_dir: str | Path) -> bool:
    """Whether the entry's checkpoint files are under ``model_dir`` (RobustBench layout).

    The project's own zoo has :func:`leaderboard.zoo.entries.zoo_weights_present`.
    """
    from leaderboard import robustbench_compat as rb

    return rb.weights_present(entry.name, entry.dataset, entry.threat_model, model_dir)
