"""Many GPUs through Ray: one task per model, GPUs as resources.

Each task loads its model and images, scores them with the same code as the local
backend and writes its own result file atomically; the driver only tracks completion.
A task that dies (out of memory, a crashed worker) is recorded as failed by the driver.
"""

from __future__ import annotations

import dataclasses
import logging
import traceback
from pathlib import Path

from tqdm.auto import tqdm

from leaderboard import store
from leaderboard.registry import ZooEntry
from leaderboard.scoring import ScoreConfig, empty_record, score_and_write
from leaderboard.store import RunSummary

logger = logging.getLogger(__name__)

_PACKAGE_DIR = Path(__file__).resolve().parent


def run_ray(
    todo: list[ZooEntry],
    config: ScoreConfig,
    results_dir: str | Path,
    summary: RunSummary,
    address: str | None,
    num_gpus_per_task: float,
    num_cpus_per_task: float,
    progress: bool,
) -> None:
    """Score ``todo`` as Ray tasks and add their outcomes to ``summary``.

    Args:
        todo: models to score.
        config: scoring settings (per-image progress bars are turned off in the workers).
        results_dir: root of the result files (must be reachable from every worker).
        summary: updated in place.
        address: cluster address (``"auto"``, ``"ray://host:10001"``); ``None`` starts a
            local cluster.
        num_gpus_per_task: GPUs reserved per task.
        num_cpus_per_task: CPUs reserved per task.
        progress: show a progress bar over completed tasks.
    """
    try:
        import ray
    except ImportError as exc:
        raise ImportError('--backend ray needs Ray: pip install -e ".[leaderboard]"') from exc
    if not todo:
        return
    started_here = not ray.is_initialized()
    if started_here:
        runtime_env = {"py_modules": [str(_PACKAGE_DIR)]} if address else None
        ray.init(address=address, include_dashboard=False, runtime_env=runtime_env,
                 log_to_driver=True)
    results_dir = str(Path(results_dir).resolve())
    config = dataclasses.replace(config, progress=False)
    remote = ray.remote(num_gpus=num_gpus_per_task, num_cpus=num_cpus_per_task)(score_and_write)
    refs = {remote.remote(entry, config, results_dir): entry for entry in todo}
    pending = list(refs)
    try:
        with tqdm(total=len(pending), desc="models (ray)", unit="model",
                  disable=not progress) as bar:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                entry = refs[ready[0]]
                try:
                    record = ray.get(ready[0])
                except Exception as exc:  # a dead worker fails one model only
                    record = empty_record(entry, config)
                    record.error = (
                        f"{type(exc).__name__}: {exc}\n" + traceback.format_exc()[-2000:]
                    )
                    store.write_result(results_dir, entry, record, None)
                summary.add(record)
                bar.set_postfix_str(entry.key)
                bar.update(1)
    finally:
        if started_here:
            ray.shutdown()
