"""Score one model: Fisher statistics, clean accuracy and wall time, with provenance.

:func:`score_model` fills one :class:`~leaderboard.record.ResultRecord` (the result file's
layout is described there, once) and the per-image arrays stored beside it
(:mod:`leaderboard.store`). The model comes from the run's source (:mod:`leaderboard.sources`);
with baselines configured (the project's zoo by default) the record also holds
:func:`leaderboard.baselines.score_baselines`. A zoo model's result at its second threat model is
the first one's, filed again (:func:`shared_result`), since one pass serves both.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import platform
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from art_fim.precision import check_precision
from art_fim.results import FisherStatistics
from leaderboard import data as lb_data
from leaderboard import store
from leaderboard.baselines import Baselines, score_baselines
from leaderboard.record import ResultRecord, Settings
from leaderboard.registry import ZooEntry
from leaderboard.robustbench_compat import MissingWeightsError
from leaderboard.sources import source_named

logger = logging.getLogger(__name__)

ROBUSTBENCH_EPS: dict[str, dict[str, float]] = {
    "cifar10": {"Linf": 8 / 255, "L2": 0.5},
    "cifar100": {"Linf": 8 / 255, "L2": 0.5},
    "imagenet": {"Linf": 4 / 255},
}


@dataclass(frozen=True)
class ScoreConfig:
    """How to score: shared by every model of a run (picklable, so Ray tasks get it as is).

    Attributes:
        model_dir: root of RobustBench's checkpoint layout, or for ``source="zoo"`` the zoo
            folder (``models/`` and ``model_info/``).
        data_dir: torchvision-layout data root, or ``None`` for the bundled CIFAR-10 subset.
        n_examples: test images per model.
        batch_size: largest batch (the metric shrinks it to fit GPU memory).
        method: ``"auto"`` or ``"exact"`` (see :class:`art_fim.FisherInformationMetric`).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        seed: seed of every random draw.
        progress: show per-image progress bars.
        trust_checkpoints: unpickle checkpoints in full (``weights_only=False``), which runs
            any code they contain; off by default.
        source: the name of the models' :class:`~leaderboard.sources.Source`:
            ``"robustbench"`` (RobustBench's zoo and checkpoints) or ``"zoo"`` (the project's
            zoo, state dicts read weights-only).
        baselines: the baseline scores to compute beside the Fisher statistics, or ``None``.
        precision: ``"float32"`` (default) or ``"tf32"`` (:mod:`art_fim.precision`).
        refine: also compute the refined radii (the predicted accuracy the tables use).
    """

    model_dir: str
    data_dir: str | None = None
    n_examples: int = 1000
    batch_size: int = 128
    method: str = "auto"
    device: str = "auto"
    seed: int = 0
    progress: bool = True
    trust_checkpoints: bool = False
    source: str = "robustbench"
    baselines: Baselines | None = None
    precision: str = "float32"
    refine: bool = True

    def __post_init__(self) -> None:
        source_named(self.source)
        check_precision(self.precision)

    def settings(self, dataset: str) -> Settings:
        """The settings that decide a result's numbers (:class:`~leaderboard.record.Settings`)."""
        return Settings(
            n_examples=self.n_examples,
            seed=self.seed,
            method=self.method,
            images=lb_data.source_name(dataset, self.data_dir),
            precision=self.precision,
            refine=self.refine,
            baselines=None if self.baselines is None else self.baselines.settings(),
        )


#: Images of the warm-up pass before each model's timed pass.
WARMUP_IMAGES = 2


@contextlib.contextmanager
def deterministic_cudnn(device: torch.device) -> Iterator[None]:
    """Deterministic cuDNN kernels without autotuning on a GPU; the caller's flags come back after.

    ``torch.backends.cudnn.benchmark`` and ``deterministic`` are process-wide: a library call that
    set them and left them would change every later convolution of the caller's program.
    """
    cudnn = torch.backends.cudnn
    saved = (cudnn.benchmark, cudnn.deterministic)
    if device.type == "cuda":
        cudnn.benchmark, cudnn.deterministic = False, True
    try:
        yield
    finally:
        cudnn.benchmark, cudnn.deterministic = saved


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a clock read after it sees the work done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def resolve_device(device: str) -> torch.device:
    """``"auto"`` is CUDA when available, else CPU; ``"cuda"`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            "--device cuda was asked for but torch sees no GPU; use --device cpu or auto"
        )
    return torch.device(device)


def versions() -> dict[str, str]:
    """Versions of Python and of the packages that determine the numbers."""
    import art_fim

    found = {"python": platform.python_version(), "art_fim": art_fim.__version__,
             "torch": torch.__version__}
    for package in ("numpy", "robustbench", "timm", "torchvision"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def device_name(device: torch.device) -> str:
    """The device as a result records it.

    For example ``cuda:0 (NVIDIA H100 80GB HBM3)`` or ``cpu (x86_64, torch threads: 2)``.
    """
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"{device} ({platform.machine() or 'unknown'}, torch threads: {torch.get_num_threads()})"


def load_images(entry: ZooEntry, config: ScoreConfig) -> lb_data.ImageSet:
    """The ``n_examples`` test images for the entry's dataset.

    ImageNet images get the model's own preprocessing.
    """
    return lb_data.image_set(entry.dataset, config.n_examples, config.data_dir, entry.name,
                             entry.threat_model)


def empty_record(entry: ZooEntry, config: ScoreConfig) -> ResultRecord:
    """A result with what is known before scoring, marked failed until scoring completes."""
    return ResultRecord(
        model=entry.name,
        dataset=entry.dataset,
        threat_model=entry.threat_model,
        reported=entry.reported,
        n_examples=config.n_examples,
        method=config.method,
        batch_size=config.batch_size,
        device=config.device,
        precision=config.precision,
        seed=config.seed,
        versions=versions(),
        settings=config.settings(entry.dataset),
        checkpoint_load="trusted (weights_only=False)" if config.trust_checkpoints
        else "weights_only",
    )


@dataclass
class Scored:
    """A scored model: its result record and its per-image arrays (``None`` if it failed).

    Attributes:
        record: the result record.
        per_image: the arrays of :data:`leaderboard.store.PER_IMAGE_ARRAYS`.
    """

    record: ResultRecord
    per_image: dict[str, np.ndarray] | None = None


def score_model(entry: ZooEntry, config: ScoreConfig,
                images: lb_data.ImageSet | None = None) -> Scored:
    """Score one model; never raises for a model's own failure (``status="failed"`` instead).

    Args:
        entry: the zoo model.
        config: the run's settings.
        images: the test images already loaded for this dataset, or ``None`` to load them.

    Returns:
        The :class:`Scored` model: its result record and per-image arrays.
    """
    record = empty_record(entry, config)
    scored = Scored(record)
    start = time.perf_counter()
    try:
        device = resolve_device(config.device)
        record.device = device_name(device)
        with deterministic_cudnn(device):
            _score_into(scored, entry, config, device, images, start)
        record.status = "ok"
    except Exception as exc:  # a failing model is recorded and the run goes on
        tail = traceback.format_exc().strip().splitlines()[-20:]
        record.error = f"{type(exc).__name__}: {exc}\n" + "\n".join(tail)
        scored.per_image = None
        # Missing weights are counted once by the caller, not warned about model by model.
        log = logger.info if isinstance(exc, MissingWeightsError) else logger.warning
        log("%s failed: %s: %s", entry.key, type(exc).__name__, exc)
    finally:
        record.seconds["total"] = time.perf_counter() - start
    return scored


def _score_into(scored: Scored, entry: ZooEntry, config: ScoreConfig, device: torch.device,
                images: lb_data.ImageSet | None, start: float) -> None:
    """Fill ``scored`` with the model's statistics; raises whatever goes wrong."""
    from art_fim import fisher_statistics

    record = scored.record
    torch.manual_seed(config.seed)
    images = images if images is not None else load_images(entry, config)
    x = images.x
    record.images = images.provenance()
    model, record.checkpoints = source_named(config.source).load(entry, config.model_dir,
                                                                 config.trust_checkpoints)
    model = model.float().to(device).eval()
    loaded_at = time.perf_counter()
    record.seconds["load"] = loaded_at - start
    # The metric in float32 throughout: no autocast, whatever the model's own defaults.
    # One Jacobian per batch gives λ_max, the trace, the robust radii and the predictions.
    budgets = ROBUSTBENCH_EPS.get(entry.dataset, {})

    def statistics(inputs: np.ndarray, labels: np.ndarray, progress: bool) -> FisherStatistics:
        with torch.autocast(device_type=device.type, enabled=False):
            return fisher_statistics(
                model, inputs, labels, norms=tuple(budgets), refine=config.refine,
                method=config.method,
                batch_size=config.batch_size, seed=config.seed, verbose=progress,
                precision=config.precision,
            )

    # A warm-up on a few images first, so that the timed pass is not charged for CUDA's
    # initialisation, the first kernels' loading and the allocator's first requests.
    statistics(x[:WARMUP_IMAGES], images.y[:WARMUP_IMAGES], progress=False)
    synchronize(device)
    warmed_at = time.perf_counter()
    record.seconds["warmup"] = warmed_at - loaded_at
    stats = statistics(x, images.y, progress=config.progress)
    synchronize(device)
    fisher_done = time.perf_counter()
    spectral, trace = stats.spectral_norm, stats.trace
    scored.per_image = per_image_arrays(images, stats)
    _set_summaries(record, store.summarize_per_image(scored.per_image, budgets))
    record.route = {
        quantity: {"method": estimate.method, "batch_size": estimate.batch_size}
        for quantity, estimate in (("spectral_norm", spectral), ("trace", trace))
    }
    # With method="auto" the trace may take another route (Hutchinson) than λ_max (Lanczos).
    record.method = (
        spectral.method if trace.method == spectral.method
        else f"{spectral.method} (trace: {trace.method})"
    )
    record.seconds["fisher"] = fisher_done - warmed_at
    record.images_per_second = len(x) / max(fisher_done - warmed_at, 1e-12)
    record.precision = stats.precision
    record.competitors = stats.competitors
    record.proof_failure = stats.proof_failure
    if config.baselines is not None:
        record.baselines = score_baselines(
            model.cpu(), x, images.y, budgets, config.baselines, np.asarray(spectral.values),
            seed=config.seed, progress=config.progress,
        )
        record.seconds["baselines"] = time.perf_counter() - fisher_done


def _set_summaries(record: ResultRecord, summaries: dict[str, Any]) -> None:
    """Copy :func:`leaderboard.store.summarize_per_image`'s fields into the record."""
    for name, value in summaries.items():
        setattr(record, name, value)


def shared_result(entry: ZooEntry, config: ScoreConfig, results_dir: str | Path) -> Scored | None:
    """The model's stored result at another threat model, refiled for this one (project zoo).

    A zoo model is one network attacked at both ℓ∞ and ℓ2: its Fisher statistics, radii at
    both budgets and baselines come from one pass, so its second threat model reuses the
    first one's result (with its own reported accuracies) instead of scoring again, also when
    a rerun resumes between the two. RobustBench's models differ per threat model: ``None``.
    """
    if not source_named(config.source).one_pass_per_model:
        return None
    settings = config.settings(entry.dataset)
    for path in sorted((Path(results_dir) / entry.dataset).glob(f"*/{entry.name}.json")):
        record = store.read_result(path)
        if (
            path.parent.name == entry.threat_model
            or record is None
            or not record.ok
            or record.settings.difference(settings)
        ):
            continue
        per_image = store.read_per_image(path.with_suffix(".npz"),
                                         (record.per_image or {}).get("sha256"))
        shared = dataclasses.replace(record, shared_from=record.threat_model,
                                     threat_model=entry.threat_model, reported=entry.reported)
        return Scored(shared, per_image)
    return None


def per_image_arrays(images: lb_data.ImageSet, stats: FisherStatistics) -> dict[str, np.ndarray]:
    """The per-image values a result stores in its ``.npz``.

    See :data:`leaderboard.store.PER_IMAGE_ARRAYS`.
    """
    arrays = {
        "index": np.asarray(images.index, dtype=np.int64),
        "label": np.asarray(images.y, dtype=np.int64),
        "prediction": np.asarray(stats.predictions, dtype=np.int64),
        "spectral_norm": np.asarray(stats.spectral_norm.values, dtype=np.float64),
        "spectral_norm_stderr": np.asarray(stats.spectral_norm.stderr, dtype=np.float64),
        "trace": np.asarray(stats.trace.values, dtype=np.float64),
        "trace_stderr": np.asarray(stats.trace.stderr, dtype=np.float64),
    }
    for suffix, table in (("", stats.radius), ("_refined", stats.refined_radius)):
        for name, radius in table.items():
            arrays[f"radius_{name}{suffix}"] = np.asarray(radius.values, dtype=np.float64)
            # Whether each radius is proven to be the minimum over all classes (every one is
            # where every class was seen): an unproven one counts as not robust.
            proven = np.ones(len(radius.values), bool) if radius.proven is None else radius.proven
            arrays[f"proven_{name}{suffix}"] = np.asarray(proven, dtype=bool)
    return arrays


def score_and_write(
    entry: ZooEntry, config: ScoreConfig, results_dir: str | Path,
    images: lb_data.ImageSet | None = None
) -> ResultRecord:
    """Score one model, store its result files and return the record.

    The files are written by :func:`leaderboard.store.write_result`.
    """
    scored = score_model(entry, config, images)
    return store.write_result(results_dir, entry, scored.record, scored.per_image)
