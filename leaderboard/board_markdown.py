"""The leaderboard as Markdown (``leaderboard.md``), every value from a result file escaped.

A model name or an error message is data, not markup: :func:`md_text` backslash-escapes every
character Markdown or its inline HTML would act on (``|`` would split a table cell, ``<`` open a
tag, ``[`` a link, ``*`` emphasis), so a file can change what a cell says but not what the
document does.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from typing import Any

from leaderboard import labels
from leaderboard.json_checks import finite_number
from leaderboard.labels import CORRELATIONS, score_label
from leaderboard.read_results import Skipped
from leaderboard.stats import Correlation, accuracy_interval
from leaderboard.tracking import Tracking

#: ASCII punctuation that Markdown (CommonMark, GitHub's) or inline HTML gives a meaning to
#: anywhere in a line; each may be backslash-escaped. An underscore between two letters or
#: digits cannot start or end emphasis, so names like ``resnet9_pgd8`` stay as written.
_MARKUP = re.compile(r"[\\`*\[\]<>|~&]|(?<![^\W_])_|_(?![^\W_])")
#: What starts a block (heading, list, quote, ordered list) when it opens a list item's text.
_BLOCK_START = re.compile(r"^([#+=-]|\d+[.)])")

INTRO = (
    "λ_max: spectral norm of the input Fisher information per test image, summarised over the "
    "scored images, computed by the route in the method column (exact: K Jacobian rows and a "
    "float64 K × K eigenproblem; lanczos / hutchinson: matrix-free). Predicted: attack-free "
    "robust accuracy, the fraction of images whose robust radius at the threat model reaches "
    "RobustBench's budget (first-order radius, or refined where the result stores it, then "
    "both are shown); |Δ|: the absolute difference of the refined prediction where there is "
    "one, else the first-order one, from the reported AutoAttack accuracy. Accuracies in "
    "percent; AutoAttack accuracy as reported by RobustBench, or for the project's zoo as "
    "measured here (standard AutoAttack on the first images of the same bundled test subset, "
    "from its model-info file), with its Wilson 95% interval over the images it was measured on. "
    "Coefficients with paired-bootstrap 95% intervals."
)

#: What the "which score tracks AutoAttack" tables' errors are.
TRACKING_NOTE = (
    "Every score, sorted by |Spearman| with AutoAttack accuracy (with its paired-bootstrap 95% "
    "interval). Errors are mean absolute differences from AutoAttack accuracy in points. "
    "Calibrated: a monotone (isotonic) map from the score to accuracy, fitted on the other "
    "models and evaluated on the held-out one, in the direction the score declares; learned "
    "direction: each fit takes its direction from its own training models. Uncalibrated: the "
    "predicted accuracy as it is, fitted on nothing. Cost: the median over the models of the "
    "score's seconds per image over AutoAttack's."
)



def md_text(value: Any) -> str:
    """A value as Markdown text that renders as itself: markup escaped, lines joined."""
    text = _MARKUP.sub(lambda m: "\\" + m.group(0), " ".join(str(value).split()))
    # Only punctuation can be escaped: "12." becomes "12\\.".
    return _BLOCK_START.sub(lambda m: f"{m.group(1)[:-1]}\\{m.group(1)[-1]}", text)


def number(value: Any, digits: int = 4) -> str:
    """A number with ``digits`` significant digits; text escaped; ``None`` empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return md_text(value)


def percent(value: Any) -> str:
    """An accuracy in percent with one decimal, as RobustBench prints them ("3.0", not "3")."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return f"{value:.1f}"
    return number(value)


def percent_with_interval(value: Any, n: int | None) -> str:
    """``41.2 (36.9–45.6)``: the accuracy and its Wilson 95% interval over ``n`` images."""
    interval = accuracy_interval(value, n)
    if interval is None:
        return percent(value)
    return f"{value:.1f} ({interval[0]:.1f}–{interval[1]:.1f})"


def _model_table(scored: list[dict[str, Any]]) -> list[str]:
    # Results rescored with the refined radii show both predictions; |Δ| is of the refined one.
    refined = any(finite_number(r["predicted_refined"]) for r in scored)
    # The proven percentage only where it says something: the ten-class zoo's is 100% throughout.
    proven = labels.some_unproven(scored)
    predicted_head = "predicted (refined) | predicted (first-order)" if refined else "predicted"
    lines = [
        f"| model | architecture | AutoAttack (95% interval) | {predicted_head} | \\|Δ\\| "
        + ("| proven " if proven else "")
        + "| clean (reported) | clean (here, n) | median λ_max | mean log10 λ_max | median tr F "
        "| method | s | status |",
        "|---|---|---:|" + "---:|" * (2 + refined + proven)
        + "---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for r in scored:
        clean_here = (f"{percent(r['clean_acc'])} ({r['n_examples']})"
                      if r["clean_acc"] is not None else "")
        predicted = (f"{percent(r['predicted_refined'])} | {percent(r['predicted_first_order'])}"
                     if refined else percent(r["predicted_robust_acc"]))
        lines.append(
            f"| {md_text(r['model'])} | {number(r['architecture'])} | "
            f"{percent_with_interval(r['autoattack_acc'], r.get('autoattack_n'))} | {predicted} "
            f"| {percent(r['predicted_abs_error'])} | "
            + (f"{percent(labels.proven_of(r))} | " if proven else "")
            + f"{percent(r['reported_clean_acc'])} | "
            f"{clean_here} | {number(r['spectral_norm_median'])} "
            f"| {number(r['spectral_norm_mean_log10'], 3)} | {number(r['trace_median'])} "
            f"| {number(r['method'])} | {number(r['seconds'], 3)} | {md_text(r['status'])} |"
        )
    return lines


def _failures(failed: list[dict[str, Any]]) -> list[str]:
    """The models that were not scored; those without weights in one line."""
    if not failed:
        return []
    missing = [r for r in failed if "MissingWeightsError" in (r["error"] or "")]
    lines = ["", f"Not scored ({len(failed)}):", ""]
    lines += [f"- {md_text(r['model'])}: {md_text(r['error'] or r['status'])}" for r in failed
              if r not in missing]
    if missing:
        lines.append(f"- without weights ({len(missing)}): "
                     + ", ".join(md_text(r["model"]) for r in missing))
    return lines


def _baselines(scored: list[dict[str, Any]], columns: list[str]) -> list[str]:
    shown = [c for c in columns if any(isinstance(r.get(c), (int, float)) for r in scored)]
    if not shown:
        return []
    lines = ["", "Baselines (medians over their images): "
             + ", ".join(score_label(c) for c in shown) + ".", "",
             "| model | " + " | ".join(score_label(c) for c in shown) + " |",
             "|---|" + "---:|" * len(shown)]
    lines += [f"| {md_text(r['model'])} | " + " | ".join(number(r[c]) for c in shown) + " |"
              for r in scored]
    return lines


def cost_table(summary: list[tuple[str, float, float, int]], note: str) -> list[str]:
    """Markdown lines of a cost summary: each metric's seconds per image and ratio to AutoAttack's.

    Args:
        summary: ``(metric, s / image, × AutoAttack's, models)`` rows, AutoAttack's first.
        note: what the numbers are.
    """
    if not summary:
        return []
    lines = ["", f"Cost per image ({note}):", "",
             "| metric | s / image | × AutoAttack's | models |", "|---|---:|---:|---:|"]
    for what, seconds, ratio, count in summary:
        lines.append(f"| {what} | {number(seconds, 3)} | "
                     f"{'1' if what == summary[0][0] else number(ratio, 3)} | {count} |")
    return lines


def _points(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def tracking_table(tracked: list[Tracking]) -> list[str]:
    """Markdown lines of one group's "which score tracks AutoAttack" table (rows as sorted)."""
    if not tracked:
        return []
    lines = ["", "### Which attack-free score tracks AutoAttack", "", TRACKING_NOTE, "",
             "| score | larger = | Spearman (95% interval) | calibrated error | learned direction "
             "| uncalibrated error | × AutoAttack's cost | models |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for row in tracked:
        fit = row.calibrated
        models = len(fit.errors) if fit else (row.spearman.n if row.spearman else "")
        lines.append(
            f"| {score_label(row.score)} | {'more' if row.higher_is_robust else 'less'} robust "
            f"| {row.spearman if row.spearman else ''} | {_points(fit.mae if fit else None)} "
            f"| {_points(row.learned_mae)} | {_points(row.uncalibrated_mae)} "
            f"| {number(row.cost.ratio, 2) if row.cost else ''} | {models} |")
    return lines


def _correlations(table: dict[str, dict[str, Correlation]]) -> list[str]:
    n = next(iter(next(iter(table.values())).values())).n
    if n < 3:
        # Rows of NaN say nothing; the sentence says why there are none.
        return ["", f"Correlations over {n} models: rank correlations need at least 3 models "
                f"with AutoAttack accuracy; {n} so far."]
    kinds = list(next(iter(table.values())))
    lines = ["", f"Correlations over {n} models:", "",
             "| score | " + " | ".join(md_text(CORRELATIONS.get(k, k)) for k in kinds) + " |",
             "|---|" + "---|" * len(kinds)]
    lines += [f"| {score_label(score)} | " + " | ".join(str(row[k]) for k in kinds) + " |"
              for score, row in table.items()]
    return lines


def markdown(rows: list[dict[str, Any]], correlations: dict[str, dict[str, dict[str, Correlation]]],
             skipped: list[Skipped] | tuple[Skipped, ...] = (), *,
             titles: dict[str, str] | None = None,
             errors: dict[str, tuple[float, int]] | None = None,
             costs: dict[str, tuple[list[tuple[str, float, float, int]], str]] | None = None,
             baseline_columns: list[str] | tuple[str, ...] = (),
             tracked: dict[str, list[Tracking]] | None = None) -> str:
    """The leaderboard as Markdown.

    Args:
        rows: rows of :func:`leaderboard.render.flatten`.
        correlations: ``group -> score -> kind -> Correlation``.
        skipped: the files left out.
        titles: ``group -> heading`` (dataset, threat model and budget); default the group.
        errors: ``group -> (mean |predicted − AutoAttack|, models)``.
        costs: ``group -> (cost summary, what its numbers are)``.
        baseline_columns: the baseline score columns to tabulate where present.
        tracked: ``group -> which score tracks AutoAttack`` (:mod:`leaderboard.tracking`).

    Returns:
        Per group a ranked table of the scored models, the failures, which score tracks
        AutoAttack, baselines, costs and correlations; then the files skipped.
    """
    titles, errors, costs, tracked = titles or {}, errors or {}, costs or {}, tracked or {}
    lines = ["# Input-Fisher leaderboard", "", INTRO]
    by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_group[f"{row['dataset']}/{row['threat_model']}"].append(row)
    for group, members in sorted(by_group.items()):
        scored = sorted((r for r in members if r["status"] == "ok"),
                        key=lambda r: -(r["autoattack_acc"]
                                        if isinstance(r["autoattack_acc"], (int, float)) else -1.0))
        lines += ["", f"## {md_text(titles.get(group, group))}", ""]
        sizes = labels.sample_sizes(scored)
        if sizes:
            lines += [f"{sizes[0].upper()}{sizes[1:]}.", ""]
        lines += _model_table(scored)
        if labels.some_unproven(scored):
            lines += ["", f"{labels.PROVEN_NOTE[0].upper()}{labels.PROVEN_NOTE[1:]}."]
        if group in errors:
            mean, count = errors[group]
            lines += ["", f"Mean |predicted − AutoAttack| over {count} models: {mean:.2f} points."]
        lines += _failures([r for r in members if r["status"] != "ok"])
        lines += tracking_table(tracked.get(group, []))
        lines += _baselines(scored, list(baseline_columns))
        if group in costs:
            lines += cost_table(*costs[group])
        if group in correlations and correlations[group]:
            lines += _correlations(correlations[group])
    if skipped:
        lines += ["", f"## Files skipped ({len(skipped)})", ""]
        lines += [f"- {md_text(item)}" for item in skipped]
    return "\n".join(lines) + "\n"
