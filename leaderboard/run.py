"""The resumable scoring loop, in one process or as one Ray task per model.

Each model's result is written atomically to ``<results>/<dataset>/<threat_model>/<model>.json``
(and its per-image values beside it, see :mod:`leaderboard.store`) as soon as it is scored,
so a run killed at any point loses at most the model in progress. A rerun skips every model
whose file says ``"status": "ok"`` and retries the failed ones; a stored result scored with
other settings stops the run before anything is scored
(:class:`~leaderboard.store.SettingsMismatchError`) unless ``overwrite`` rescores it. A model that
fails is recorded with its error and the run goes on.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable
from pathlib import Path

from tqdm.auto import tqdm

from leaderboard import data as lb_data
from leaderboard import store
from leaderboard.registry import ZooEntry
from leaderboard.scoring import ScoreConfig, load_images, score_and_write, shared_result
from leaderboard.sources import source_named
from leaderboard.store import RunSummary

logger = logging.getLogger(__name__)


def pending_entries(
    entries: Iterable[ZooEntry],
    results_dir: str | Path,
    summary: RunSummary,
    config: ScoreConfig | None = None,
    overwrite: bool = False,
) -> list[ZooEntry]:
    """Entries still to score: those without an ``ok`` result (all of them with ``overwrite``).

    Raises:
        SettingsMismatchError: a kept result was scored with other settings than ``config``'s
            (``n_examples``, ``seed``, ``method``, image source); nothing is scored then, so
            one folder never mixes settings.
    """
    todo, mismatched = [], []
    for entry in entries:
        previous = None if overwrite else store.read_result(store.result_path(results_dir, entry))
        if previous is not None and previous.ok:
            differ = {} if config is None else previous.settings.difference(
                config.settings(entry.dataset)
            )
            if differ:
                mismatched.append((entry.key, differ))
            summary.skipped.append(entry.key)
        else:
            todo.append(entry)
    if mismatched:
        raise store.SettingsMismatchError(store.mismatch_message(results_dir, mismatched))
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
        logger.info("%d of %d models already scored; skipping them", len(summary.skipped),
                    len(entries))
    if backend == "local":
        _run_local(todo, config, results_dir, summary, progress)
    elif backend == "ray":
        from leaderboard.ray_backend import run_ray

        # One task per model where one pass serves every threat model (the project's zoo); its
        # other threat models are refiled from that result.
        first = todo
        if source_named(config.source).one_pass_per_model:
            by_model = {(e.dataset, e.name): e for e in reversed(todo)}  # each model's first entry
            first = [e for e in todo if by_model[(e.dataset, e.name)] is e]
        run_ray(first, config, results_dir, summary, ray_address, num_gpus_per_task,
                num_cpus_per_task, progress)
        _run_local([e for e in todo if e not in first], config, results_dir, summary, progress)
    else:
        raise ValueError(f"backend must be 'local' or 'ray', got {backend!r}")
    summary.seconds = time.perf_counter() - started
    return summary


def _run_local(
    todo: list[ZooEntry], config: ScoreConfig, results_dir: str | Path, summary: RunSummary,
    progress: bool
) -> None:
    cache: dict[str, lb_data.ImageSet] = {}
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
                except Exception:  # score_model records the same error per model
                    images = None
            shared = shared_result(entry, config, results_dir)
            if shared is not None:
                summary.add(store.write_result(results_dir, entry, shared.record, shared.per_image))
            else:
                summary.add(score_and_write(entry, config, results_dir, images))
            bar.update(1)
