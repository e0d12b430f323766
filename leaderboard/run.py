"""The resumable scoring loop, in one process or as one Ray task per model.

Each model's result is written atomically (a temporary file in the same folder, then
``os.replace``) to ``<results>/<dataset>/<threat_model>/<model>.json`` as soon as it is
scored, so a run killed at any point loses at most the model in progress. A rerun skips
every model whose file says ``"status": "ok"`` and retries the failed ones. A model that
fails is recorded with its error and the run goes on.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from leaderboard.registry import ZooEntry
from leaderboard.scoring import ScoreConfig, load_images, score_model

logger = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a run did.

    Attributes:
        done: keys (``dataset/threat/name``) scored successfully in this run.
        skipped: keys whose results were already there.
        failed: ``key -> first line of the error``.
        seconds: wall time of the run.
    """

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, record: dict[str, Any]) -> None:
        """Count one freshly written result."""
        key = f"{record['dataset']}/{record['threat_model']}/{record['model']}"
        if record["status"] == "ok":
            self.done.append(key)
        else:
            self.failed[key] = (record.get("error") or "").splitlines()[0] if record.get("error") else "?"

    def table(self) -> str:
        """A plain-text summary for the end of ``run``."""
        lines = [
            f"{'done':>8}  {len(self.done)}",
            f"{'skipped':>8}  {len(self.skipped)}  (already scored)",
            f"{'failed':>8}  {len(self.failed)}",
            f"{'time':>8}  {self.seconds:.1f} s",
        ]
        for key, error in self.failed.items():
            lines.append(f"  failed {key}: {error}")
        return "\n".join(lines)


def result_path(results_dir: str | Path, entry: ZooEntry) -> Path:
    """``<results>/<dataset>/<threat_model>/<model>.json``."""
    return Path(results_dir) / entry.dataset / entry.threat_model / f"{entry.name}.json"


def read_result(path: Path) -> dict[str, Any] | None:
    """A result file's content, or ``None`` if it is absent or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_atomic(path: Path, record: dict[str, Any]) -> None:
    """Write JSON so that readers see either the old file or the complete new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def score_and_write(
    entry: ZooEntry,
    config: ScoreConfig,
    results_dir: str | Path,
    images: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Score one model and write its result file; returns the record."""
    record = score_model(entry, config, images)
    write_atomic(result_path(results_dir, entry), record)
    return record


def pending_entries(
    entries: Iterable[ZooEntry],
    results_dir: str | Path,
    summary: RunSummary,
    config: ScoreConfig | None = None,
    overwrite: bool = False,
) -> list[ZooEntry]:
    """Entries still to score: those without an ``ok`` result (all of them with ``overwrite``).

    A kept result computed with other settings (``n_examples``, ``seed``) is logged, since
    only ``--overwrite`` recomputes it.
    """
    todo = []
    for entry in entries:
        previous = None if overwrite else read_result(result_path(results_dir, entry))
        if previous is not None and previous.get("status") == "ok":
            summary.skipped.append(entry.key)
            if config is not None:
                stale = {
                    key: previous.get(key)
                    for key in ("n_examples", "seed")
                    if previous.get(key) != getattr(config, key)
                }
                if stale:
                    logger.warning("keeping %s computed with %s; --overwrite rescores it", entry.key, stale)
        else:
            todo.append(entry)
    return todo


def run_models(
    entries: list[ZooEntry],
    config: ScoreConfig,
    results_dir: str | Path,
    *,
    backend: str = "local",
    overwrite: bool = False,
    ray_address: str | None = None,
    num_gpus_per_task: float = 0,
    num_cpus_per_task: float = 1,
    progress: bool = True,
) -> RunSummary:
    """Score every entry not yet done, writing one result file per model.

    Args:
        entries: models to score.
        config: scoring settings.
        results_dir: root of the result files.
        backend: ``"local"`` (this process, one model after the other) or ``"ray"``
            (one task per model).
        overwrite: rescore models whose results exist.
        ray_address: Ray cluster address; ``None`` starts a local cluster.
        num_gpus_per_task: GPUs each Ray task reserves (0 on CPU).
        num_cpus_per_task: CPUs each Ray task reserves.
        progress: show a progress bar over models (with ETA).

    Returns:
        The :class:`RunSummary`.
    """
    started = time.perf_counter()
    summary = RunSummary()
    todo = pending_entries(entries, results_dir, summary, config, overwrite)
    if summary.skipped:
        logger.info("%d of %d models already scored; skipping them", len(summary.skipped), len(entries))
    if backend == "local":
        _run_local(todo, config, results_dir, summary, progress)
    elif backend == "ray":
        from leaderboard.ray_backend import run_ray

        run_ray(todo, config, results_dir, summary, ray_address, num_gpus_per_task, num_cpus_per_task, progress)
    else:
        raise ValueError(f"backend must be 'local' or 'ray', got {backend!r}")
    summary.seconds = time.perf_counter() - started
    return summary


def _run_local(
    todo: list[ZooEntry], config: ScoreConfig, results_dir: str | Path, summary: RunSummary, progress: bool
) -> None:
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    config = dataclasses.replace(config, progress=config.progress and progress)
    with tqdm(total=len(todo), desc="models", unit="model", disable=not progress) as bar:
        for entry in todo:
            bar.set_postfix_str(entry.key)
            images = None
            if entry.dataset != "imagenet":
                try:
                    if entry.dataset not in cache:
                        cache[entry.dataset] = load_images(entry, config)
                    images = cache[entry.dataset]
                except Exception:  # noqa: BLE001  (score_model records the same error per model)
                    images = None
            summary.add(score_and_write(entry, config, results_dir, images))
            bar.update(1)
