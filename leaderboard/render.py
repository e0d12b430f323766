"""Render scored models: a CSV, a Markdown leaderboard, correlations, plots and an HTML page.

    python -m leaderboard render [--results leaderboard/results] [--out DIR] [--allow-partial]

Reads every ``<results>/<dataset>/<threat_model>/<model>.json`` written by ``run`` and its
per-image ``.npz``, each checked first (:mod:`leaderboard.read_results`: a file that is not
UTF-8, not JSON, has a field of the wrong type, or an ``.npz`` that does not match the SHA-256
its JSON records, is named and skipped), and writes

* ``leaderboard.csv``: one row per scored model;
* ``leaderboard.md``: per dataset and threat model, the models ranked by reported AutoAttack
  accuracy beside their Fisher statistics and their predicted (attack-free) robust accuracy,
  refined and first-order where both are stored, with the absolute difference of the better
  one (refined where stored) from the reported one, the mean of that difference over the
  models, then the correlation table;
* ``correlations.json``: every coefficient with its bootstrap interval;
* ``fisher_vs_autoattack.png``, ``predicted_vs_autoattack.png`` (with the identity line),
  ``clean_vs_autoattack.png`` and ``accuracy_vs_eps_<dataset>_<threat_model>.png`` (each
  model's predicted accuracy-vs-ε curve from its stored radii, with AutoAttack's measured points);
* ``index.html``: all of it as one self-contained page (:mod:`leaderboard.html_page`);
* where results carry baselines (the project's zoo, ``run --source zoo``): their columns, their
  correlations beside the Fisher scores', a cost table (seconds per image of every metric and
  its ratio to AutoAttack's, from the ``attack_seconds`` of each model's model-info file), and
  ``scores_vs_autoattack.png`` (every score against AutoAttack accuracy).

Correlations are computed within each dataset/threat model (AutoAttack accuracies at
different threat models are not comparable), over models with a reported AutoAttack accuracy.
The command exits with status 1 when it skipped a file, unless ``--allow-partial`` is given.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from leaderboard import html_page, plots, store
from leaderboard.baselines import BASELINES
from leaderboard.model_curves import ModelCurve, model_curve
from leaderboard.read_results import ResultFile, Skipped, paper_link, read_results
from leaderboard.record import ResultRecord
from leaderboard.registry import MODEL_INFO_DIR
from leaderboard.render_options import add_arguments
from leaderboard.stats import Correlation, correlation_table

logger = logging.getLogger(__name__)
# The aggregates of the per-image Fisher values that are correlated with accuracy. The
# Fisher norm is heavy-tailed, so the median and the mean of log10 are the robust choices.
SCORES: dict[str, tuple[str, str]] = {
    "spectral_norm_median": ("spectral_norm", "median"),
    "spectral_norm_mean_log10": ("spectral_norm", "mean_log10"),
    "spectral_norm_mean": ("spectral_norm", "mean"),
    "trace_median": ("trace", "median"),
}

# Scores of the baselines (:data:`leaderboard.baselines.BASELINES`), where a result has them:
# column -> (baseline, one entry per threat model?). CLEVER is a distortion: larger = more robust.
BASELINE_SCORES: dict[str, tuple[str, bool]] = {
    b.column: (b.name, b.per_threat) for b in BASELINES
}
BASELINE_COST_COLUMNS = {b.column: b.cost_column for b in BASELINES}
# Seconds per image of each metric, beside AutoAttack's (the model-info's attack_seconds / n).
COSTS = {
    "fisher_seconds_per_image": (
        "input Fisher, exact (λ_max, trace, radii at both budgets: one pass)"
    ),
    **{b.cost_column: b.description for b in BASELINES},
}

COLUMNS = (
    "dataset", "threat_model", "model", "architecture", "training", "additional_data",
    "reported_clean_acc",
    "autoattack_acc", "clean_acc", "n_examples", *SCORES, "predicted_robust_acc",
    "predicted_refined",
    "predicted_first_order", "predicted_abs_error", *BASELINE_SCORES,
    "method", "seconds", *COSTS, "autoattack_seconds_per_image", "status", "error",
)


def load_results(results: Path) -> list[ResultRecord]:
    """Every usable result record under ``results``, sorted by path.

    See :func:`read_results`.
    """
    read = read_results(results)
    for skipped in read.skipped:
        logger.warning("skipping %s", skipped)
    return [r.record for r in read.results]


def flatten(record: ResultRecord) -> dict[str, Any]:
    """One CSV row from one result record."""
    reported = record.reported
    fisher = record.fisher or {}
    row = {
        "dataset": record.dataset,
        "threat_model": record.threat_model,
        "model": record.model,
        "architecture": reported.architecture,
        "training": training_of(record),
        "additional_data": reported.additional_data,
        "reported_clean_acc": reported.clean_acc,
        "autoattack_acc": reported.autoattack_acc,
        "clean_acc": record.clean_acc,
        "n_examples": record.n_examples,
        "seconds": record.seconds.get("total"),
        "status": record.status,
        # The last line of a traceback names the exception and its message.
        "error": ((record.error or "").strip().splitlines() or [""])[-1],
    }
    for column, (quantity, statistic) in SCORES.items():
        row[column] = (fisher.get(quantity) or {}).get(statistic)
    # The attack-free prediction at the model's own threat model and RobustBench budget: the
    # refined one where a result has it (the more accurate), else the first-order one.
    prediction = (record.predicted_robust_acc or {}).get(record.threat_model) or {}
    row["predicted_first_order"] = prediction.get("first_order")
    row["predicted_refined"] = prediction.get("refined")
    predicted = (
        row["predicted_refined"] if _finite(row["predicted_refined"])
        else row["predicted_first_order"]
    )
    row["predicted_robust_acc"] = predicted
    row["predicted_abs_error"] = (
        abs(predicted - row["autoattack_acc"]) if _finite(predicted)
        and _finite(row["autoattack_acc"]) else None
    )
    row["method"] = record.method
    row.update(_baseline_columns(record))
    return row


def training_of(record: ResultRecord) -> str | None:
    """How a model of the project's zoo was trained (``"PGD ℓ∞ 8/255"``); ``None`` for others.

    RobustBench's model-info files do not say how a model was trained; the zoo's plan does.
    """
    if record.reported.venue != "this project's zoo":
        return None
    from leaderboard.zoo.plan import ZOO

    entry = ZOO.get(record.model)
    if entry is None:
        return None
    regime = entry.regime
    norm = "ℓ∞" if regime.norm == "Linf" else "ℓ2"
    radius = f"{regime.eps * 255:.3g}/255" if regime.norm == "Linf" else f"{regime.eps:g}"
    return {
        "standard": "standard",
        "noise": f"Gaussian noise σ = {regime.sigma:g}",
        "pgd": f"PGD {norm} {radius}",
        "trades": f"TRADES {norm} {radius} (β = {regime.beta:g})",
    }.get(regime.kind, regime.kind)


def _baseline_columns(record: ResultRecord) -> dict[str, Any]:
    """The baselines' medians and every metric's seconds per image (``None`` where absent)."""
    baselines = record.baselines or {}
    threat = record.threat_model
    row: dict[str, Any] = {}
    for column, (name, per_threat) in BASELINE_SCORES.items():
        entry = baselines.get(name) or {}
        if per_threat:
            entry = entry.get(threat.lower()) or {}
        row[column] = entry.get("median")
        row[BASELINE_COST_COLUMNS[column]] = entry.get("seconds_per_image")
    fisher_seconds = record.seconds.get("fisher")
    n = record.n_examples
    row["fisher_seconds_per_image"] = fisher_seconds / n if _finite(fisher_seconds) and n else None
    attack, attacked = record.reported.attack_seconds, record.reported.attack_n_examples
    row["autoattack_seconds_per_image"] = (
        attack / attacked if _finite(attack) and attacked else None
    )
    return row


def scores_of(rows: list[dict[str, Any]]) -> list[str]:
    """The score columns with a value for at least one scored model.

    The Fisher columns come first, then the baselines.
    """
    candidates = [*SCORES, "predicted_robust_acc", *BASELINE_SCORES]
    return [c for c in candidates if any(r["status"] == "ok" and _finite(r.get(c)) for r in rows)]


def mean_abs_errors(rows: list[dict[str, Any]]) -> dict[str, tuple[float, int]]:
    """Mean ``|predicted − reported|`` robust accuracy (points) and model count.

    One entry per ``dataset/threat_model``.
    """
    errors: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        if row["status"] == "ok" and _finite(row["predicted_abs_error"]):
            errors[f"{row['dataset']}/{row['threat_model']}"].append(row["predicted_abs_error"])
    return {group: (float(np.mean(values)), len(values))
            for group, values in sorted(errors.items())}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def group_correlations(rows: list[dict[str, Any]], seed: int = 0,
                       n_resamples: int = 2000) -> dict[str, dict[str, dict[str, Correlation]]]:
    """Correlations per ``dataset/threat_model`` and score, over models with AutoAttack accuracy."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["status"] == "ok" and _finite(row["autoattack_acc"]):
            groups[f"{row['dataset']}/{row['threat_model']}"].append(row)
    out: dict[str, dict[str, dict[str, Correlation]]] = {}
    for group, members in sorted(groups.items()):
        robust = np.array([m["autoattack_acc"] for m in members], dtype=float)
        # The clean accuracy RobustBench reports (full test set) where known, else ours.
        clean = np.array(
            [m["reported_clean_acc"] if _finite(m["reported_clean_acc"]) else m["clean_acc"]
             for m in members],
            dtype=float,
        )
        out[group] = {
            score: correlation_table(
                np.array([m[score] if _finite(m[score]) else np.nan for m in members], dtype=float),
                robust, clean,
                seed=seed, n_resamples=n_resamples,
            )
            for score in scores_of(members)
        }
    return out


def _format(value: Any, digits: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _format_percent(value: Any) -> str:
    """An accuracy in percent with one decimal, as RobustBench prints them ("3.0", not "3")."""
    return (
        f"{value:.1f}" if isinstance(value, (int, float)) and math.isfinite(value)
        else _format(value)
    )


def markdown(rows: list[dict[str, Any]], correlations: dict[str, dict[str, dict[str, Correlation]]],
             skipped: list[Skipped] | tuple[Skipped, ...] = ()) -> str:
    """The leaderboard as Markdown.

    One ranked table and one correlation table per group, then the files skipped.
    """
    lines = ["# Input-Fisher leaderboard", ""]
    lines.append(
        "λ_max: spectral norm of the input Fisher information per test image, summarised over the "
        "scored images, computed by the route in the method column (exact: K Jacobian rows and a "
        "float64 K × K eigenproblem; lanczos / hutchinson: matrix-free). Predicted: attack-free "
        "robust accuracy, the fraction of images whose robust radius at the threat model reaches "
        "RobustBench's budget (first-order radius, or refined where the result stores it, then "
        "both are shown); |Δ|: the absolute difference of the refined prediction where there is "
        "one, else the first-order one, from the reported AutoAttack accuracy. Accuracies in "
        "percent; AutoAttack accuracy as reported by RobustBench, or for the project's zoo as "
        "measured here (standard AutoAttack on the first images of the same bundled test subset, "
        "from its model-info file). Coefficients with paired-bootstrap 95% intervals."
    )
    errors = mean_abs_errors(rows)
    by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_group[f"{row['dataset']}/{row['threat_model']}"].append(row)
    for group, members in sorted(by_group.items()):
        members.sort(key=lambda r: -(r["autoattack_acc"] if _finite(r["autoattack_acc"]) else -1.0))
        # Results rescored with the refined radii show both predictions; |Δ| is of the refined one.
        refined = any(r["status"] == "ok" and _finite(r["predicted_refined"]) for r in members)
        predicted_head = "predicted (refined) | predicted (first-order)" if refined else "predicted"
        lines += [
            "",
            f"## {group}",
            "",
            f"| model | architecture | AutoAttack | {predicted_head} | \\|Δ\\| | clean (reported) "
            "| clean (here, n) | median λ_max | mean log10 λ_max | median tr F | method | s | "
            "status |",
            "|---|---|---:|" + "---:|" * (2 + refined) + "---:|---:|---:|---:|---:|---|---:|---|",
        ]
        # Scored models in the table; the others after it, those without weights in one line.
        failed = [r for r in members if r["status"] != "ok"]
        for r in (r for r in members if r["status"] == "ok"):
            clean_here = (
                f"{_format_percent(r['clean_acc'])} ({r['n_examples']})"
                if r["clean_acc"] is not None else ""
            )
            status = r["status"] if r["status"] == "ok" else f"{r['status']}: {r['error']}"
            lines.append(
                f"| {r['model']} | {_format(r['architecture'])} | "
                f"{_format_percent(r['autoattack_acc'])} "
                + (f"| {_format_percent(r['predicted_refined'])} | "
                   f"{_format_percent(r['predicted_first_order'])} " if refined
                   else f"| {_format_percent(r['predicted_robust_acc'])} ")
                + f"| {_format_percent(r['predicted_abs_error'])} "
                f"| {_format_percent(r['reported_clean_acc'])} | {clean_here} | "
                f"{_format(r['spectral_norm_median'])} "
                f"| {_format(r['spectral_norm_mean_log10'], 3)} | {_format(r['trace_median'])} "
                f"| {_format(r['method'])} | {_format(r['seconds'], 3)} | {status} |"
            )
        if group in errors:
            mean, count = errors[group]
            lines += ["", f"Mean |predicted − AutoAttack| over {count} models: {mean:.2f} points."]
        missing = [r["model"] for r in failed if "MissingWeightsError" in r["error"]]
        if failed:
            lines += ["", f"Not scored ({len(failed)}):", ""]
            lines += [f"- {r['model']}: {r['error']}" for r in failed if r["model"] not in missing]
            if missing:
                lines.append(f"- without weights ({len(missing)}): {', '.join(missing)}")
        scored = [r for r in members if r["status"] == "ok"]
        baselines = [c for c in BASELINE_SCORES if any(_finite(r[c]) for r in scored)]
        if baselines:
            lines += ["", "Baselines (medians over their images): " + ", ".join(baselines) + ".",
                      "",
                      "| model | " + " | ".join(baselines) + " |",
                      "|---|" + "---:|" * len(baselines)]
            lines += [f"| {r['model']} | " + " | ".join(_format(r[c]) for c in baselines) + " |"
                      for r in scored]
        lines += cost_table(scored)
        if group in correlations:
            table = correlations[group]
            kinds = list(next(iter(table.values())))
            n = next(iter(next(iter(table.values())).values())).n
            lines += ["", f"Correlations over {n} models:", ""]
            if n < 3:
                lines += [("(rank correlations need at least 3 models with AutoAttack accuracy; "
                           f"{n} so far, so the coefficients are undefined, NaN)"), ""]
            lines += ["| score | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
            for score, row in table.items():
                lines.append(f"| {score} | " + " | ".join(str(row[k]) for k in kinds) + " |")
    if skipped:
        lines += ["", f"## Files skipped ({len(skipped)})", ""]
        lines += [f"- {_escape_md(str(item))}" for item in skipped]
    return "\n".join(lines) + "\n"


def _escape_md(text: str) -> str:
    return text.replace("|", "\\|").replace("_", "\\_").replace("*", "\\*")


def cost_summary(rows: list[dict[str, Any]]) -> list[tuple[str, float, float, int]]:
    """``(metric, median seconds per image, median ratio to AutoAttack's, models)`` rows.

    AutoAttack comes first. Empty when no row knows AutoAttack's cost (RobustBench does not publish
    it).
    """
    attack = [r["autoattack_seconds_per_image"] for r in rows
              if _finite(r["autoattack_seconds_per_image"])]
    if not attack:
        return []
    summary = [("standard AutoAttack", float(np.median(attack)), 1.0, len(attack))]
    for column, what in COSTS.items():
        pairs = [(r[column], r["autoattack_seconds_per_image"]) for r in rows
                 if _finite(r[column]) and _finite(r["autoattack_seconds_per_image"])]
        if pairs:
            summary.append((what, float(np.median([p[0] for p in pairs])),
                            float(np.median([p[0] / p[1] for p in pairs])), len(pairs)))
    return summary


#: What the cost tables say about their numbers.
COST_NOTE = (
    "medians over the models of wall time per image; AutoAttack's from its model-info file; "
    "wall times depend on the machine and its load when each ran"
)


def cost_table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown lines of :func:`cost_summary`.

    Each metric's seconds per image and ratio to AutoAttack's.
    """
    summary = cost_summary(rows)
    if not summary:
        return []
    lines = ["", f"Cost per image ({COST_NOTE}):", "",
             "| metric | s / image | × AutoAttack's | models |", "|---|---:|---:|---:|"]
    for what, seconds, ratio, count in summary:
        lines.append(f"| {what} | {_format(seconds, 3)} | "
                     f"{'1' if what == summary[0][0] else _format(ratio, 3)} | {count} |")
    return lines


def model_curves(results: list[ResultFile], curve_dir: Path | None,
                 skipped: list[Skipped]) -> dict[str, ModelCurve]:
    """``dataset/threat_model/model -> curve``.

    One for every scored result that stores radii at its threat model.
    """
    curves = {}
    for result in results:
        if result.record.ok and result.per_image is not None:
            curve = model_curve(result, curve_dir, skipped)
            if curve is not None:
                curves[f"{curve.dataset}/{curve.threat_model}/{curve.model}"] = curve
    return curves


def write_figures(rows: list[dict[str, Any]], correlations: dict[str,
                                                                 dict[str, dict[str, Correlation]]],
                  curves: dict[str, ModelCurve], out: Path) -> tuple[list[Path], dict[str, str],
                                                                     dict[str, str]]:
    """Write every PNG.

    Returns their paths, each scatter figure as inline SVG and each curve as a data URI.
    """
    paths, svgs, curve_images = [], {}, {}
    for figure in plots.scatter_figures(rows, correlations):
        paths.append(out / f"{figure.name}.png")
        paths[-1].write_bytes(plots.png(figure))
        svgs[figure.name] = plots.svg(figure)
        plots.close([figure])
    by_group: dict[str, list[ModelCurve]] = defaultdict(list)
    for key, curve in curves.items():
        by_group[f"{curve.dataset}/{curve.threat_model}"].append(curve)
        figure = plots.curve_figure(curve)
        curve_images[key] = plots.png_data_uri(figure)
        plots.close([figure])
    for group, members in sorted(by_group.items()):
        figure = plots.curves_grid_figure(members, group)
        paths.append(out / f"{figure.name}.png")
        paths[-1].write_bytes(plots.png(figure))
        plots.close([figure])
    return paths, svgs, curve_images


def render(results: Path, out: Path, seed: int = 0, autoattack_curves: Path | None = None,
           n_resamples: int = 2000) -> dict[str, Any]:
    """Write the CSV, Markdown, correlations, plots and HTML page for the results under ``results``.

    Args:
        results: directory that ``run`` wrote into.
        out: output directory (created).
        seed: bootstrap seed.
        n_resamples: bootstrap resamples of each correlation's interval.
        autoattack_curves: folder of further AutoAttack budgets
            (``<dataset>/<threat_model>/<model>_eps<label>.json``); ``None`` or absent: none.

    Returns:
        ``{"rows": [...], "correlations": {...}, "curves": {...}, "skipped": [Skipped, ...],
        "files": [...]}``; ``skipped`` lists every file left out, with its reason.

    Raises:
        FileNotFoundError: no usable result under ``results`` says ``"status": "ok"``.
        SettingsMismatchError: results of one dataset/threat model were scored with different
            settings.
    """
    read = read_results(results)
    skipped = list(read.skipped)
    records = [r.record for r in read.results]
    how = (
        "`python -m leaderboard run --model-dir DIR` scores the models whose weights are under DIR "
        "(`python -m leaderboard list --model-dir DIR` shows which those are)."
    )
    unusable = (
        f" ({len(skipped)} file(s) skipped: {'; '.join(map(str, skipped[:3]))})" if skipped else ""
    )
    if not records:
        raise FileNotFoundError(
            f"nothing is scored under {results} (no usable <dataset>/<threat_model>/<model>.json "
            f"there{unusable}): {how}"
        )
    failed = [r for r in records if not r.ok]
    if len(failed) == len(records):
        first = failed[0]
        raise FileNotFoundError(
            f"nothing is scored under {results}: its {len(records)} result file(s) all record "
            f"failures (e.g. {first.key}: "
            f"{flatten(first)['error']}){unusable}. Fix what they say, then {how}"
        )
    store.check_uniform_settings(records, results)
    rows = [flatten(r) for r in records]
    correlations = group_correlations(rows, seed=seed, n_resamples=n_resamples)
    curves = model_curves(read.results, autoattack_curves, skipped)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "leaderboard.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    (out / "leaderboard.md").write_text(markdown(rows, correlations, skipped))
    serialisable = {g: {s: {k: c.as_dict() for k, c in t.items()} for s, t in table.items()}
                    for g, table in correlations.items()}
    (out / "correlations.json").write_text(json.dumps(serialisable, indent=2, allow_nan=True)
                                           + "\n")
    pngs, svgs, curve_images = write_figures(rows, correlations, curves, out)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[f"{row['dataset']}/{row['threat_model']}"].append(row)
    links = {
        f"{r['dataset']}/{r['threat_model']}/{r['model']}": paper_link(
            MODEL_INFO_DIR, r["dataset"], r["threat_model"], r["model"]
        )
        for r in rows
    }
    page = html_page.page(html_page.PageData(
        rows=rows, records=[r.to_json() for r in records], correlations=correlations,
        errors=mean_abs_errors(rows), skipped=skipped,
        figures=svgs, curves=curves, curve_images=curve_images,
        links={k: v for k, v in links.items() if v},
        costs={g: cost_summary([r for r in members if r["status"] == "ok"])
               for g, members in groups.items()},
        cost_note=COST_NOTE, n_resamples=n_resamples,
    ))
    (out / "index.html").write_text(page, encoding="utf-8")
    files = [out / "leaderboard.csv", out / "leaderboard.md", out / "correlations.json", *pngs,
             out / "index.html"]
    return {"rows": rows, "correlations": correlations, "curves": curves, "skipped": skipped,
            "files": files}


def run_from_args(args: argparse.Namespace) -> int:
    """Render, then print the correlations of the main score per group."""
    rendered = render(args.results, args.out or args.results, seed=args.seed,
                      autoattack_curves=getattr(args, "autoattack_curves", None))
    print((Path(args.out or args.results) / "leaderboard.md").read_text())
    for group, (mean, count) in mean_abs_errors(rendered["rows"]).items():
        print(f"{group}: mean |predicted − AutoAttack| robust accuracy {mean:.2f} points over "
              f"{count} models")
    for group, table in rendered["correlations"].items():
        n = table["spectral_norm_median"]["spearman_vs_autoattack"].n
        print(f"\n{group}: correlations with reported AutoAttack accuracy ({n} models)")
        if n < 3:
            print(f"  rank correlations need at least 3 models with AutoAttack accuracy; {n} so "
                  "far (NaN below)")
        width = max(map(len, table))
        for score, row in table.items():
            print(f"  {score:<{width}} Spearman {row['spearman_vs_autoattack']}   Kendall "
                  f"{row['kendall_vs_autoattack']}"
                  f"   partial|clean {row['partial_spearman_vs_autoattack_given_clean']}")
    print("\nwrote " + ", ".join(str(p) for p in rendered["files"]))
    skipped = rendered["skipped"]
    if skipped:
        print(f"\nskipped {len(skipped)} file(s):", file=sys.stderr)
        for item in skipped:
            print(f"  {item}", file=sys.stderr)
        if not getattr(args, "allow_partial", False):
            print("error: the leaderboard leaves these out; fix or remove them, or pass "
                  "--allow-partial",
                  file=sys.stderr)
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m leaderboard.render``: the render subcommand on its own."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
