"""What the leaderboard calls its columns, scores, datasets and threat models, in one place.

The result files and the CSV keep their identifiers (``spectral_norm_median``); everything a reader
sees (the page's tables and headings, the Markdown, the plots' axes, the command's summary) uses
the names below. A new score gets its entry in :data:`SCORES` and appears everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from leaderboard.json_checks import finite_number


@dataclass(frozen=True)
class Score:
    """A score a model is ranked or correlated by.

    Attributes:
        label: its short name in tables, legends and axes.
        meaning: one sentence a reader new to it needs.
        higher_is_robust: whether a larger value means a more robust model (sets the direction of
            the first sort and the expected sign of its correlation with AutoAttack accuracy).
        log_scale: whether its plots use a log axis when the values spread over a decade.
    """

    label: str
    meaning: str
    higher_is_robust: bool = False
    log_scale: bool = True


#: Every score column of :func:`leaderboard.render.flatten`, in the order tables show them.
SCORES: dict[str, Score] = {
    "spectral_norm_median": Score(
        "median λ_max",
        "median over the scored images of λ_max(F(x)), the largest eigenvalue of the input Fisher "
        "information (smaller: a smoother, usually more robust model)"),
    "spectral_norm_mean_log10": Score(
        "mean log10 λ_max", "mean over the images of log10 λ_max(F(x))", log_scale=False),
    "spectral_norm_mean": Score("mean λ_max", "mean over the images of λ_max(F(x))"),
    "trace_median": Score("median tr F", "median over the images of the trace of F(x)"),
    "predicted_robust_acc": Score(
        "predicted %",
        "attack-free robust accuracy: the share of images classified correctly whose robust "
        "radius reaches the budget (refined radii where stored, else first-order)",
        higher_is_robust=True, log_scale=False),
    "blackbox_spectral_norm_median": Score(
        "black-box λ_max", "query-only estimate of λ_max, median over its images"),
    "reference_spectral_norm_median": Score(
        "reference λ_max",
        "the first paper's reference white-box estimator of λ_max, median over its images"),
    "clever_median": Score(
        "CLEVER", "ART's clever_u at this threat model, median over its images (a distortion: "
        "larger is more robust)", higher_is_robust=True),
    "great_score": Score(
        "GREAT Score",
        "ART's GreatScorePyTorch on the softmax outputs: mean over the images of the top-1 minus "
        "top-2 probability where the prediction is right, 0 where it is not (larger: more robust)",
        higher_is_robust=True, log_scale=False),
    "logit_margin_median": Score(
        "logit margin",
        "median over the images of the signed logit margin z_y − max_{k≠y} z_k, negative where "
        "the prediction is wrong (larger: more robust)", higher_is_robust=True, log_scale=False),
    "gradient_norm_median": Score(
        "gradient norm",
        "median over the images of the loss's input-gradient norm in the threat's dual norm "
        "(ℓ1 for ℓ∞, ℓ2 for ℓ2; larger: less robust)"),
}

#: Each correlation the leaderboard reports, as its tables head it.
CORRELATIONS: dict[str, str] = {
    "spearman_vs_autoattack": "Spearman vs AutoAttack",
    "kendall_vs_autoattack": "Kendall vs AutoAttack",
    "pearson_vs_autoattack": "Pearson vs AutoAttack",
    "spearman_vs_clean": "Spearman vs clean",
    "partial_spearman_vs_autoattack_given_clean": "partial Spearman vs AutoAttack | clean",
}

DATASETS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet": "ImageNet"}
THREATS = {"Linf": "ℓ∞", "L2": "ℓ2", "corruptions": "common corruptions"}
#: Images RobustBench's reported accuracies were measured on, per dataset: its ``benchmark`` runs on
#: the full CIFAR test sets and on its fixed 5,000-image ImageNet subset.
ROBUSTBENCH_TEST_IMAGES = {"cifar10": 10_000, "cifar100": 10_000, "imagenet": 5_000}


def score_label(column: str) -> str:
    """A score's readable name; an unknown column comes back with spaces for underscores."""
    score = SCORES.get(column)
    return score.label if score else column.replace("_", " ")


def budget_text(eps: Any, threat_model: str) -> str | None:
    """A budget as RobustBench writes it: ``8/255`` for ℓ∞, ``0.5`` for ℓ2.

    ``eps`` is a number or already a text (``"8/255"``, as model-info files store it); ``None``
    when it is neither.
    """
    if isinstance(eps, str):
        return eps.strip() or None
    if isinstance(eps, (int, float)) and not isinstance(eps, bool) and math.isfinite(eps):
        return f"{eps * 255:.3g}/255" if threat_model == "Linf" else f"{eps:.3g}"
    return None


def group_title(dataset: str, threat_model: str, budget: str | None) -> str:
    """A table's heading: ``CIFAR-10, ℓ∞, ε = 8/255``."""
    parts = [DATASETS.get(dataset, dataset), THREATS.get(threat_model, threat_model)]
    if budget:
        parts.append(f"ε = {budget}")
    return ", ".join(parts)


def sample_sizes(rows: list[dict[str, Any]]) -> str:
    """What a table's accuracies were measured on, in words ("" when its rows do not say).

    ``AutoAttack ran on 500 test images; the Fisher scores and predictions use 500 images``.
    """
    attacked = sorted({r["autoattack_n"] for r in rows if r.get("autoattack_n")})
    images = sorted({r["n_examples"] for r in rows if r.get("n_examples")})
    parts = []
    if attacked:
        parts.append(f"AutoAttack ran on {' or '.join(f'{n:,}' for n in attacked)} test images")
    if images:
        parts.append("the Fisher scores and predictions use "
                     f"{' or '.join(f'{n:,}' for n in images)} images")
    return "; ".join(parts)


#: What the proven percentage is, where some model has one below 100%.
PROVEN_NOTE = (
    "proven: the percent of the images whose robust radius is proven to be the minimum over all "
    "classes (radii taken over a subset of classes may be larger than the true one); the "
    "prediction counts every other image as not robust, so it is never above what all classes "
    "would give"
)


def proven_of(row: dict[str, Any]) -> Any:
    """The proven percentage of the radii behind a row's prediction (refined where it is used)."""
    if finite_number(row.get("predicted_refined")) and row.get("proven_refined") is not None:
        return row["proven_refined"]
    return row.get("proven_first_order")


def some_unproven(rows: list[dict[str, Any]]) -> bool:
    """Whether some scored model's prediction rests on radii not all proven (below 100%)."""
    return any(finite_number(proven_of(r)) and proven_of(r) < 100.0 for r in rows)
