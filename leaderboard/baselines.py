"""Baseline robustness scores the leaderboard compares the input-Fisher metric with.

* The first paper's reference white-box estimator (Zhang et al.,
  https://arxiv.org/abs/2606.04767, code ``franz-chang/SRP``, ``estimate_spec_white``),
  re-implemented from its description: for one input at a time,

  1. ``K`` separate ``backward`` calls give ``Q[:, k] = ∇_x log p_k`` (``d × K``); like the
     reference, they also accumulate the parameters' gradients, which the reference never uses;
  2. ``B = Λ^{1/2} Qᵀ Q Λ^{1/2}`` with ``Λ = diag(p)`` (``K × K``; its non-zero spectrum is that
     of ``F = Q Λ Qᵀ``);
  3. the estimate is the largest of 100 Rayleigh quotients ``zᵀ B z / zᵀ z``, ``z ~ N(0, I_K)``.

  Every Rayleigh quotient is at most ``λ_max(B)``, so the estimate is biased low, by a
  model-dependent factor (about 0.6 at ``K = 10`` for confident inputs); ``art_fim``
  computes ``λ_max(B)`` exactly.
* The query-only estimate of ``art_fim`` (``method="blackbox"``, :mod:`art_fim.blackbox`).
* ART's ``clever_u`` (Weng et al., https://arxiv.org/abs/1801.10578): an extreme-value
  estimate of the local Lipschitz constant of the margins in a ball of radius ``radius``,
  turned into a lower bound on the minimal adversarial distortion (larger = more robust).
* The attack-free scores a user would reach for instead ("peers", :mod:`leaderboard.peers`):
  ART's GREAT Score on a softmax view of the model (Li, Chen, Ho,
  https://arxiv.org/abs/2304.09875; ART's mean over the images), the signed logit margin (the
  proxy of margin consistency, Ngnawé et al., https://arxiv.org/abs/2406.18451; median) and the
  loss's input-gradient norm in the threat's dual norm (median; per threat model). They score
  every image of the Fisher pass by default.

:func:`score_baselines` computes each on its own subset of the test images, with its wall time,
so that the leaderboard can set each score's rank correlation with AutoAttack accuracy beside
its cost.

Adding a baseline is a change to this module only: its image count (and any setting of its own)
as a field of :class:`Baselines`, a function that scores it (:data:`Compute`), and one
:class:`Baseline` entry in :data:`BASELINES`. The command line's ``--<name>-n`` option, the
record's ``baselines`` block (:mod:`leaderboard.record` checks any baseline's summary), the
progress bar, and the rendered columns, cost table and plots are all drawn from that entry.

The module imports torch and ART only where a baseline is computed, so that the command line
can read :data:`BASELINES` and :class:`Baselines` for its help without loading them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn


def srp_whitebox_estimate(
    forward: Callable[[Tensor], Tensor],
    x: Tensor,
    *,
    num_quotients: int = 100,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Return the reference estimate of ``λ_max(F(x))`` for each input, one input at a time.

    Args:
        forward: maps ``[1, *input_shape]`` to logits ``[1, K]`` (preprocessing included).
        x: ``[N, *input_shape]`` inputs.
        num_quotients: number of random Rayleigh quotients (100 in the reference code).
        generator: random generator for the quotient directions.

    Returns:
        ``[N]`` float64 estimates.
    """
    import torch

    estimates = []
    for sample in x:
        point = sample[None].detach().clone().requires_grad_(True)
        # log_softmax instead of the reference's log(softmax(·)): the same values, without
        # the reference's underflow to -inf for logit gaps beyond ~90 in float32.
        log_p = torch.log_softmax(forward(point), dim=-1)[0]
        columns = []
        for k in range(log_p.shape[0]):  # K separate backward passes, as in the reference
            log_p[k].backward(retain_graph=True)
            columns.append(point.grad.detach().clone().reshape(-1))
            point.grad = None
        q = torch.stack(columns, dim=1).double()
        root = log_p.detach().double().exp().sqrt()
        b = root[:, None] * (q.T @ q) * root[None, :]
        # Drawn on the generator's device (the CPU by default), then moved: the same directions on
        # any device.
        z = torch.randn(b.shape[0], num_quotients, generator=generator, dtype=torch.float64,
                        device=generator.device if generator is not None else "cpu").to(b.device)
        quotients = (z * (b @ z)).sum(0) / (z * z).sum(0)
        estimates.append(quotients.max())
    return torch.stack(estimates)


def zero_parameter_gradients(module: torch.nn.Module) -> None:
    """Drop the parameter gradients the reference accumulates as a side effect."""
    for parameter in module.parameters():
        parameter.grad = None


#: The peers' default image count: more than any test set, so every scored image.
ALL_IMAGES = 100_000


@dataclass(frozen=True)
class Baselines:
    """How many images each baseline scores, and its settings (``0`` images: not computed).

    Each takes the first images of the scored set (the bundled subset is class-interleaved,
    so any prefix is balanced).

    Attributes:
        blackbox_n: images for ``art_fim``'s query-only ``λ_max``.
        blackbox_queries: its query budget per image (``max_queries``).
        reference_n: images for the first paper's reference white-box estimate.
        clever_n: images for ART's ``clever_u`` (per threat model; several seconds per image
            on a CPU even for the zoo's small models).
        clever_nb_batches: ``nb_batches`` of ``clever_u``.
        clever_batch_size: ``batch_size`` of ``clever_u``.
        great_score_n: images for ART's GREAT Score (:func:`leaderboard.peers.great_score`).
        logit_margin_n: images for the signed logit margin.
        gradient_norm_n: images for the loss's input-gradient norm (per threat model).

    The peers' default, :data:`ALL_IMAGES`, takes every scored image (a prefix longer than the
    set is the whole set).
    """

    blackbox_n: int = 10
    blackbox_queries: int = 400
    reference_n: int = 20
    clever_n: int = 10
    clever_nb_batches: int = 50
    clever_batch_size: int = 10
    great_score_n: int = ALL_IMAGES
    logit_margin_n: int = ALL_IMAGES
    gradient_norm_n: int = ALL_IMAGES

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            low = 0 if name.endswith("_n") else 1
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer ≥ {low}, got {value!r}")

    def settings(self) -> dict[str, int]:
        """The settings a result records (and a rerun must share)."""
        return asdict(self)


def _summary(values: np.ndarray, seconds: float, exact: np.ndarray | None = None) -> dict[str, Any]:
    """Per-image values, their median, wall time, and the median ratio to the exact ``λ_max``.

    The median is the model's score (``"score"``) unless the caller sets another aggregate.
    """
    median = float(np.median(values))
    summary: dict[str, Any] = {
        "n": len(values),
        "values": [float(v) for v in values],
        "median": median,
        "score": median,
        "seconds": seconds,
        "seconds_per_image": seconds / len(values),
    }
    if exact is not None:
        summary["median_ratio_to_exact"] = float(np.median(values / exact[: len(values)]))
    return summary


def clever_scores(
    model: nn.Module, x: np.ndarray, norm: Any, radius: float, nb_batches: int = 50,
    batch_size: int = 10, after_each: Callable[[], Any] | None = None
) -> np.ndarray:
    """ART's untargeted CLEVER score of each input, the model wrapped as a ``PyTorchClassifier``.

    Args:
        model: eval-mode module on the CPU taking ``[0, 1]`` pixels ``[N, 3, H, W]``.
        x: ``[N, 3, H, W]`` float32 inputs.
        norm: the threat norm (``np.inf`` or ``2``); CLEVER samples the ball of that norm.
        radius: radius of the sampled ball (the threat model's budget).
        nb_batches: batches of sampled gradients (the extreme-value fit takes one maximum each).
        batch_size: gradients per batch.
        after_each: called after each image (a progress bar's step).

    Returns:
        ``[N]`` CLEVER scores (a distortion: larger = more robust).
    """
    from art.estimators.classification import PyTorchClassifier
    from art.metrics import clever_u
    from torch import nn

    classifier = PyTorchClassifier(
        model=model, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]), nb_classes=10,
        clip_values=(0.0, 1.0), device_type="cpu",
    )
    scores = []
    for sample in x:
        scores.append(clever_u(classifier, sample, nb_batches=nb_batches, batch_size=batch_size,
                               radius=radius, norm=norm, verbose=False))
        if after_each is not None:
            after_each()
    return np.array(scores, dtype=np.float64)


@dataclass(frozen=True)
class BaselineInputs:
    """What every baseline is computed from.

    Attributes:
        model: eval-mode module on the CPU taking ``[0, 1]`` pixels.
        x: the scored images, float32 ``[N, 3, H, W]``.
        y: their labels ``[N]``.
        budgets: ``{threat_model: eps}`` (RobustBench's).
        baselines: image counts and settings.
        exact_spectral_norm: the exact ``λ_max`` of the same images.
        seed: seed of every random draw.
        bar: the progress bar (advanced by one per image scored).
    """

    model: nn.Module
    x: np.ndarray
    y: np.ndarray
    budgets: Mapping[str, float]
    baselines: Baselines
    exact_spectral_norm: np.ndarray
    seed: int
    bar: Any


#: ``compute(inputs)``: one baseline's summary (:func:`_summary`), or for a per-threat-model
#: baseline ``{norm: summary}``; it scores its own prefix of ``inputs.x`` and advances
#: ``inputs.bar`` by one per image it scores.
Compute = Callable[[BaselineInputs], dict[str, Any]]


@dataclass(frozen=True)
class Baseline:
    """One baseline score: how it is asked for, computed, stored and shown.

    Attributes:
        name: its key in a record's ``baselines`` block.
        images: the :class:`Baselines` field holding its image count (``--<images>`` with dashes
            is its command-line option).
        column: the rendered column of its median.
        title: a short column header.
        description: what it is, for tooltips, the cost table and the help.
        per_threat: one summary per threat model (CLEVER samples each norm's ball) rather than one
            for the model.
        compute: the function that scores it.
    """

    name: str
    images: str
    column: str
    title: str
    description: str
    per_threat: bool
    compute: Compute

    @property
    def cost_column(self) -> str:
        """The rendered column of its seconds per image (``"clever_seconds_per_image"``)."""
        return f"{self.column.split('_', 1)[0]}_seconds_per_image"

    @property
    def option(self) -> str:
        """Its command-line option (``"--clever-n"``)."""
        return "--" + self.images.replace("_", "-")

    def count(self, baselines: Baselines) -> int:
        """How many images it scores under ``baselines`` (0: not computed)."""
        return int(getattr(baselines, self.images))

    def progress_total(self, baselines: Baselines, budgets: Mapping[str, float],
                       available: int) -> int:
        """Images it scores out of ``available``, once per threat model where it is per threat."""
        return min(self.count(baselines), available) * (len(budgets) if self.per_threat else 1)


def _blackbox(inputs: BaselineInputs) -> dict[str, Any]:
    from art_fim import fisher_spectral_norm

    subset = inputs.x[: inputs.baselines.blackbox_n]
    start = time.perf_counter()
    values = fisher_spectral_norm(
        inputs.model, subset, method="blackbox", verbose=False, seed=inputs.seed,
        blackbox_params={"max_queries": inputs.baselines.blackbox_queries, "num_bootstrap": 0},
    )
    inputs.bar.update(len(subset))
    return _summary(np.asarray(values, dtype=np.float64), time.perf_counter() - start,
                    inputs.exact_spectral_norm)


def _reference(inputs: BaselineInputs) -> dict[str, Any]:
    import torch

    generator = torch.Generator().manual_seed(inputs.seed)
    seconds, values = 0.0, []
    # One image at a time as the reference does; the same draws as one call over the subset,
    # since the generator is shared and each image draws its directions in turn.
    for sample in torch.from_numpy(inputs.x[: inputs.baselines.reference_n]):
        start = time.perf_counter()
        values.append(srp_whitebox_estimate(inputs.model, sample[None], generator=generator))
        seconds += time.perf_counter() - start
        inputs.bar.update(1)
    zero_parameter_gradients(inputs.model)
    return _summary(torch.cat(values).numpy(), seconds, inputs.exact_spectral_norm)


def _clever(inputs: BaselineInputs) -> dict[str, Any]:
    from art_fim.norms import norm_name, parse_norm

    out = {}
    for threat, eps in inputs.budgets.items():
        norm = parse_norm(threat)
        # CLEVER samples at random with NumPy's global generator: seed it for repeatability.
        np.random.seed(inputs.seed)
        start = time.perf_counter()
        values = clever_scores(inputs.model, inputs.x[: inputs.baselines.clever_n], norm, eps,
                               inputs.baselines.clever_nb_batches,
                               inputs.baselines.clever_batch_size,
                               after_each=lambda: inputs.bar.update(1))
        out[norm_name(norm)] = _summary(values, time.perf_counter() - start)
    return out


def _peer_summary(peer: Any) -> dict[str, Any]:
    """A peer score (:class:`leaderboard.peers.PeerScore`) as a baseline summary.

    ``score`` is the peer's own aggregate (ART's mean for GREAT Score, the median for the others),
    with its direction and provenance.
    """
    return {**_summary(peer.values, peer.seconds), **peer.to_json()}


def _model_peer(name: str, images: str) -> Compute:
    """The baseline of a per-model peer (:mod:`leaderboard.peers`'s ``name``) on ``images``."""

    def compute(inputs: BaselineInputs) -> dict[str, Any]:
        from leaderboard import peers

        n = getattr(inputs.baselines, images)
        peer = getattr(peers, name)(inputs.model, inputs.x[:n], inputs.y[:n])
        inputs.bar.update(len(peer.values))
        return _peer_summary(peer)

    return compute


def _gradient_norm(inputs: BaselineInputs) -> dict[str, Any]:
    from art_fim.norms import norm_name
    from leaderboard.peers import gradient_norm

    n = inputs.baselines.gradient_norm_n
    out = {}
    for threat in inputs.budgets:
        peer = gradient_norm(inputs.model, inputs.x[:n], inputs.y[:n], threat_model=threat)
        inputs.bar.update(len(peer.values))
        out[norm_name(threat)] = _peer_summary(peer)
    return out


#: Every baseline, in the order they are computed and shown.
BASELINES: tuple[Baseline, ...] = (
    Baseline("blackbox", "blackbox_n", "blackbox_spectral_norm_median", "black-box λ_max",
             'input Fisher, query-only estimate (method="blackbox")', False, _blackbox),
    Baseline("reference_whitebox", "reference_n", "reference_spectral_norm_median",
             "reference λ_max", "first paper's reference white-box estimator", False, _reference),
    Baseline("clever", "clever_n", "clever_median", "CLEVER",
             "ART clever_u (at this threat model)", True, _clever),
    Baseline("great_score", "great_score_n", "great_score", "GREAT Score",
             "ART GreatScorePyTorch on softmax outputs (mean)", False,
             _model_peer("great_score", "great_score_n")),
    Baseline("logit_margin", "logit_margin_n", "logit_margin_median", "logit margin",
             "signed logit margin z_y − max_{k≠y} z_k (median)", False,
             _model_peer("logit_margin", "logit_margin_n")),
    Baseline("gradient_norm", "gradient_norm_n", "gradient_norm_median", "gradient norm",
             "input-gradient norm of the loss, threat's dual norm (median)", True, _gradient_norm),
)


def score_baselines(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    budgets: Mapping[str, float],
    baselines: Baselines,
    exact_spectral_norm: np.ndarray,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Every baseline of ``baselines`` on its prefix of ``x``, each with its wall time.

    Args:
        model: eval-mode module on the CPU taking ``[0, 1]`` pixels.
        x: the scored images, float32 ``[N, 3, H, W]``.
        y: their labels ``[N]`` (the peers score the true class).
        budgets: ``{threat_model: eps}`` (RobustBench's), for CLEVER's norm and radius.
        baselines: image counts and settings.
        exact_spectral_norm: the exact ``λ_max`` of the same images, for each estimator's ratio to
            it.
        seed: seed of the random directions and CLEVER's samples.
        progress: show a progress bar over the baselines' images.

    Returns:
        ``{"blackbox": summary, "reference_whitebox": summary, "clever": {norm: summary},
        "great_score": summary, "logit_margin": summary, "gradient_norm": {norm: summary}}`` with
        the computed ones only (:data:`BASELINES`); a summary is ``{"n", "values", "median",
        "score", "seconds", "seconds_per_image"}``, plus ``"median_ratio_to_exact"`` for the
        ``λ_max`` estimators and ``"higher_is_robust"`` and ``"provenance"`` for the peers.
    """
    from tqdm.auto import tqdm

    chosen = [b for b in BASELINES if b.count(baselines)]
    total = sum(b.progress_total(baselines, budgets, len(x)) for b in chosen)
    out: dict[str, Any] = {}
    with tqdm(total=total, desc="baselines", unit="image", leave=False,
              disable=not progress) as bar:
        inputs = BaselineInputs(model, x, np.asarray(y), budgets, baselines,
                                exact_spectral_norm, seed, bar)
        for baseline in chosen:
            bar.set_postfix_str(baseline.name)
            out[baseline.name] = baseline.compute(inputs)
            bar.refresh()  # a fast baseline's last images would otherwise not be drawn
    return out
