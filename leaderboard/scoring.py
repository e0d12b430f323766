"""Score one zoo model: Fisher statistics, clean accuracy and wall time, as a result dict.

The result dict is the leaderboard's contract with ``render`` (one JSON file per model):
``model``, ``dataset``, ``threat_model``, ``status``, ``error``, ``reported``, ``n_examples``,
``clean_acc``, ``fisher`` (``spectral_norm`` and ``trace`` summaries from
:func:`art_fim.summarize`), ``predicted_robust_acc`` (attack-free robust accuracy in percent
at the dataset's RobustBench budgets, per threat model: ``{"Linf": {"eps", "first_order"}, ...}``),
``seconds``, ``images_per_second``, ``method``, ``batch_size``, ``device``, ``seed`` and
``versions``.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from art_fim.radius import norm_name
from leaderboard import data as lb_data
from leaderboard.registry import ZooEntry
from leaderboard.robustbench_compat import import_robustbench, load_zoo_model

logger = logging.getLogger(__name__)

#: Keys that depend on the machine and the moment, not on the model, data and seed.
TIMING_KEYS = ("seconds", "images_per_second", "device")

#: RobustBench's perturbation budgets (pixels in [0, 1]) per dataset and threat model.
ROBUSTBENCH_EPS: dict[str, dict[str, float]] = {
    "cifar10": {"Linf": 8 / 255, "L2": 0.5},
    "cifar100": {"Linf": 8 / 255, "L2": 0.5},
    "imagenet": {"Linf": 4 / 255},
}


@dataclass(frozen=True)
class ScoreConfig:
    """How to score: shared by every model of a run (picklable, so Ray tasks get it as is).

    Attributes:
        model_dir: root of RobustBench's checkpoint layout.
        data_dir: torchvision-layout data root, or ``None`` for the bundled CIFAR-10 subset.
        n_examples: test images per model.
        batch_size: largest batch (the metric shrinks it to fit GPU memory).
        method: ``"auto"`` or ``"exact"`` (see :class:`art_fim.FisherInformationMetric`).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        seed: seed of every random draw.
        progress: show per-image progress bars.
    """

    model_dir: str
    data_dir: str | None = None
    n_examples: int = 1000
    batch_size: int = 128
    method: str = "auto"
    device: str = "auto"
    seed: int = 0
    progress: bool = True


def resolve_device(device: str) -> torch.device:
    """``"auto"`` is CUDA when available, else CPU; ``"cuda"`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but torch sees no GPU; use --device cpu or auto")
    return torch.device(device)


def versions() -> dict[str, str]:
    """Versions of the packages that determine the numbers."""
    import art_fim

    try:
        robustbench = metadata.version("robustbench")
    except metadata.PackageNotFoundError:
        robustbench = "not installed"
    return {"art_fim": art_fim.__version__, "torch": torch.__version__, "robustbench": robustbench}


def load_images(entry: ZooEntry, config: ScoreConfig) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_examples`` test images for the entry's dataset (per-model preprocessing for ImageNet)."""
    if entry.dataset == "imagenet":
        if config.data_dir is None:
            raise FileNotFoundError("ImageNet models need --data-dir with RobustBench's val/<wnid>/ layout")
        return lb_data.imagenet(config.data_dir, config.n_examples, entry.name, entry.threat_model)
    return lb_data.load_test_set(entry.dataset, config.n_examples, config.data_dir)


def empty_record(entry: ZooEntry, config: ScoreConfig) -> dict[str, Any]:
    """A result with every key, marked failed until scoring completes."""
    return {
        "model": entry.name,
        "dataset": entry.dataset,
        "threat_model": entry.threat_model,
        "status": "failed",
        "error": None,
        "reported": entry.reported.to_json(),
        "n_examples": config.n_examples,
        "clean_acc": None,
        "fisher": None,
        "predicted_robust_acc": None,
        "seconds": {"load": None, "fisher": None, "total": None},
        "images_per_second": None,
        "method": config.method,
        "batch_size": config.batch_size,
        "device": config.device,
        "seed": config.seed,
        "versions": versions(),
    }


def _percent_or_none(stats: Any, eps: float, threat_model: str) -> float | None:
    """Predicted robust accuracy in percent, or ``None`` where the radii were not computed."""
    if np.isnan(stats.radius[norm_name(threat_model)].values).any():
        return None
    return 100.0 * stats.predicted_robust_accuracy(eps, threat_model, refined=False)


def score_model(
    entry: ZooEntry, config: ScoreConfig, images: tuple[np.ndarray, np.ndarray] | None = None
) -> dict[str, Any]:
    """Score one model; never raises for a model's own failure (``status="failed"`` instead).

    Args:
        entry: the zoo model.
        config: the run's settings.
        images: ``(x, y)`` already loaded for this dataset, or ``None`` to load them.

    Returns:
        The result dict (see the module docstring).
    """
    from art_fim import fisher_statistics

    record = empty_record(entry, config)
    start = time.perf_counter()
    try:
        import_robustbench()
        device = resolve_device(config.device)
        record["device"] = str(device)
        torch.manual_seed(config.seed)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        x, y = images if images is not None else load_images(entry, config)
        model = load_zoo_model(entry.name, entry.dataset, entry.threat_model, Path(config.model_dir))
        model = model.float().to(device).eval()
        loaded = time.perf_counter()
        record["seconds"]["load"] = loaded - start
        # The metric in float32 throughout: no autocast, whatever the model's own defaults.
        # One Jacobian per batch gives λ_max, the trace, the robust radii and the predictions.
        budgets = ROBUSTBENCH_EPS.get(entry.dataset, {})
        with torch.autocast(device_type=device.type, enabled=False):
            stats = fisher_statistics(
                model, x, y, norms=tuple(budgets), method=config.method, batch_size=config.batch_size,
                seed=config.seed, verbose=config.progress,
            )
        fisher_done = time.perf_counter()
        spectral, trace = stats.spectral_norm, stats.trace
        record["clean_acc"] = 100.0 * stats.accuracy
        record["fisher"] = {"spectral_norm": spectral.summary(), "trace": trace.summary()}
        record["predicted_robust_acc"] = {
            threat: {"eps": eps, "first_order": _percent_or_none(stats, eps, threat)}
            for threat, eps in budgets.items()
        }
        # With method="auto" the trace may take another route (Hutchinson) than λ_max (Lanczos).
        record["method"] = (
            spectral.method if trace.method == spectral.method else f"{spectral.method} (trace: {trace.method})"
        )
        record["n_examples"] = int(len(x))
        record["seconds"]["fisher"] = fisher_done - loaded
        record["images_per_second"] = len(x) / max(fisher_done - loaded, 1e-12)
        record["status"] = "ok"
    except Exception as exc:  # noqa: BLE001  (a failing model is recorded and the run goes on)
        tail = traceback.format_exc().strip().splitlines()[-20:]
        record["error"] = f"{type(exc).__name__}: {exc}\n" + "\n".join(tail)
        logger.warning("%s failed: %s: %s", entry.key, type(exc).__name__, exc)
    finally:
        record["seconds"]["total"] = time.perf_counter() - start
    return record
