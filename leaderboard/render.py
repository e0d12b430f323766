"""Render scored models: a CSV, a Markdown leaderboard, correlations and plots.

    python -m leaderboard render [--results leaderboard/results] [--out DIR]

Reads every ``<results>/<dataset>/<threat_model>/<model>.json`` written by ``run``, and writes

* ``leaderboard.csv``: one row per scored model;
* ``leaderboard.md``: per dataset and threat model, the models ranked by reported AutoAttack
  accuracy beside their Fisher statistics and their predicted (attack-free) robust accuracy
  with its absolute difference from the reported one, the mean of that difference over the
  models, then the correlation table;
* ``correlations.json``: every coefficient with its bootstrap interval;
* ``fisher_vs_autoattack.png`` and ``clean_vs_autoattack.png``;
* where results carry baselines (the project's zoo, ``run --source zoo``): their columns, their
  correlations beside the Fisher scores', a cost table (seconds per image of every metric and
  its ratio to AutoAttack's, from the ``attack_seconds`` of each model's model-info file), and
  ``scores_vs_autoattack.png`` (every score against AutoAttack accuracy).

Correlations are computed within each dataset/threat model (AutoAttack accuracies at
different threat models are not comparable), over models with a reported AutoAttack accuracy.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from leaderboard import store
from leaderboard.stats import Correlation, correlation_table

logger = logging.getLogger(__name__)

# The aggregates of the per-image Fisher values that are correlated with accuracy. The
# Fisher norm is heavy-tailed, so the median and the mean of log10 are the robust choices.
SCORES: dict[str, tuple[str, str]] = {
    "lambda_max_median": ("spectral_norm", "median"),
    "lambda_max_mean_log10": ("spectral_norm", "mean_log10"),
    "lambda_max_mean": ("spectral_norm", "mean"),
    "trace_median": ("trace", "median"),
}

# Scores of the baselines (:mod:`leaderboard.baselines`), where a result has them: column ->
# (baseline, CLEVER's threat-model-specific entry?). CLEVER is a distortion: larger = more robust.
BASELINE_SCORES: dict[str, tuple[str, bool]] = {
    "blackbox_lambda_max_median": ("blackbox", False),
    "reference_lambda_max_median": ("reference_whitebox", False),
    "clever_median": ("clever", True),
}
# Seconds per image of each metric, beside AutoAttack's (the model-info's attack_seconds / n).
COSTS = {
    "fisher_seconds_per_image": "input Fisher, exact (λ_max, trace, radii at both budgets: one pass)",
    "blackbox_seconds_per_image": "input Fisher, query-only estimate (method=\"blackbox\")",
    "reference_seconds_per_image": "first paper's reference white-box estimator",
    "clever_seconds_per_image": "ART clever_u (at this threat model)",
}

COLUMNS = (
    "dataset", "threat_model", "model", "architecture", "reported_clean_acc", "autoattack_acc",
    "clean_acc", "n_examples", *SCORES, "predicted_robust_acc", "predicted_abs_error", *BASELINE_SCORES,
    "method", "seconds", *COSTS, "autoattack_seconds_per_image", "status", "error",
)


def load_results(results: Path) -> list[dict[str, Any]]:
    """Every ``<dataset>/<threat_model>/<model>.json`` under ``results``, sorted by path."""
    records = []
    for path in sorted(results.glob("*/*/*.json")):
        try:
            records.append(json.loads(path.read_text()))
        except json.JSONDecodeError as err:
            logger.warning("skipping %s: not valid JSON (%s)", path, err)
    return records


def flatten(record: dict[str, Any]) -> dict[str, Any]:
    """One CSV row from one result JSON."""
    reported = record.get("reported") or {}
    fisher = record.get("fisher") or {}
    row = {
        "dataset": record.get("dataset"),
        "threat_model": record.get("threat_model"),
        "model": record.get("model"),
        "architecture": reported.get("architecture"),
        "reported_clean_acc": reported.get("clean_acc"),
        "autoattack_acc": reported.get("autoattack_acc"),
        "clean_acc": record.get("clean_acc"),
        "n_examples": record.get("n_examples"),
        "seconds": (record.get("seconds") or {}).get("total"),
        "status": record.get("status"),
        # The last line of a traceback names the exception and its message.
        "error": ((record.get("error") or "").strip().splitlines() or [""])[-1],
    }
    for column, (quantity, statistic) in SCORES.items():
        row[column] = (fisher.get(quantity) or {}).get(statistic)
    # The attack-free prediction at the model's own threat model and RobustBench budget.
    predicted = ((record.get("predicted_robust_acc") or {}).get(record.get("threat_model")) or {}).get("first_order")
    row["predicted_robust_acc"] = predicted
    row["predicted_abs_error"] = (
        abs(predicted - row["autoattack_acc"]) if _finite(predicted) and _finite(row["autoattack_acc"]) else None
    )
    row["method"] = record.get("method")
    row.update(_baseline_columns(record, reported))
    return row


def _baseline_columns(record: dict[str, Any], reported: dict[str, Any]) -> dict[str, Any]:
    """The baselines' medians and every metric's seconds per image (``None`` where absent)."""
    baselines = record.get("baselines") or {}
    threat = str(record.get("threat_model"))
    row: dict[str, Any] = {}
    for column, (name, per_threat) in BASELINE_SCORES.items():
        entry = baselines.get(name) or {}
        if per_threat:
            entry = entry.get(threat.lower()) or {}
        row[column] = entry.get("median")
        row[column.replace("lambda_max_median", "seconds_per_image").replace("median", "seconds_per_image")] = (
            entry.get("seconds_per_image")
        )
    fisher_seconds = (record.get("seconds") or {}).get("fisher")
    n = record.get("n_examples")
    row["fisher_seconds_per_image"] = fisher_seconds / n if _finite(fisher_seconds) and n else None
    attack, attacked = reported.get("attack_seconds"), reported.get("attack_n_examples")
    row["autoattack_seconds_per_image"] = attack / attacked if _finite(attack) and attacked else None
    return row


def scores_of(rows: list[dict[str, Any]]) -> list[str]:
    """The score columns with a value for at least one scored model: the Fisher ones, then baselines."""
    candidates = [*SCORES, "predicted_robust_acc", *BASELINE_SCORES]
    return [c for c in candidates if any(r["status"] == "ok" and _finite(r.get(c)) for r in rows)]


def mean_abs_errors(rows: list[dict[str, Any]]) -> dict[str, tuple[float, int]]:
    """Mean ``|predicted − reported|`` robust accuracy (points) and model count per ``dataset/threat_model``."""
    errors: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        if row["status"] == "ok" and _finite(row["predicted_abs_error"]):
            errors[f"{row['dataset']}/{row['threat_model']}"].append(row["predicted_abs_error"])
    return {group: (float(np.mean(values)), len(values)) for group, values in sorted(errors.items())}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def group_correlations(rows: list[dict[str, Any]], seed: int = 0) -> dict[str, dict[str, dict[str, Correlation]]]:
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
            [m["reported_clean_acc"] if _finite(m["reported_clean_acc"]) else m["clean_acc"] for m in members],
            dtype=float,
        )
        out[group] = {
            score: correlation_table(
                np.array([m[score] if _finite(m[score]) else np.nan for m in members], dtype=float), robust, clean,
                seed=seed,
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


def _percent(value: Any) -> str:
    """An accuracy in percent with one decimal, as RobustBench prints them ("3.0", not "3")."""
    return f"{value:.1f}" if isinstance(value, (int, float)) and math.isfinite(value) else _format(value)


def markdown(rows: list[dict[str, Any]], correlations: dict[str, dict[str, dict[str, Correlation]]]) -> str:
    """The leaderboard as Markdown: one ranked table and one correlation table per group."""
    lines = ["# Input-Fisher leaderboard", ""]
    lines.append(
        "λ_max: spectral norm of the input Fisher information per test image, summarised over the "
        "scored images, computed by the route in the method column (exact: K Jacobian rows and a "
        "float64 K × K eigenproblem; lanczos / hutchinson: matrix-free). Predicted: attack-free "
        "robust accuracy, the fraction of images whose first-order robust radius at the threat "
        "model reaches RobustBench's budget; |Δ|: its absolute difference from the reported "
        "AutoAttack accuracy. Accuracies in percent; AutoAttack accuracy as reported by "
        "RobustBench, or for the project's zoo as measured here (standard AutoAttack on the first images "
        "of the same bundled test subset, from its model-info file). Coefficients with "
        "paired-bootstrap 95% intervals."
    )
    errors = mean_abs_errors(rows)
    by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_group[f"{row['dataset']}/{row['threat_model']}"].append(row)
    for group, members in sorted(by_group.items()):
        members.sort(key=lambda r: -(r["autoattack_acc"] if _finite(r["autoattack_acc"]) else -1.0))
        lines += ["", f"## {group}", "",
                  "| model | architecture | AutoAttack | predicted | \\|Δ\\| | clean (reported) | clean (here, n) "
                  "| median λ_max | mean log10 λ_max | median tr F | method | s | status |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"]
        # Scored models in the table; the others after it, those without weights in one line.
        failed = [r for r in members if r["status"] != "ok"]
        for r in (r for r in members if r["status"] == "ok"):
            clean_here = f"{_percent(r['clean_acc'])} ({r['n_examples']})" if r["clean_acc"] is not None else ""
            status = r["status"] if r["status"] == "ok" else f"{r['status']}: {r['error']}"
            lines.append(
                f"| {r['model']} | {_format(r['architecture'])} | {_percent(r['autoattack_acc'])} "
                f"| {_percent(r['predicted_robust_acc'])} | {_percent(r['predicted_abs_error'])} "
                f"| {_percent(r['reported_clean_acc'])} | {clean_here} | {_format(r['lambda_max_median'])} "
                f"| {_format(r['lambda_max_mean_log10'], 3)} | {_format(r['trace_median'])} "
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
            lines += ["", "Baselines (medians over their images): " + ", ".join(baselines) + ".", "",
                      "| model | " + " | ".join(baselines) + " |", "|---|" + "---:|" * len(baselines)]
            lines += [f"| {r['model']} | " + " | ".join(_format(r[c]) for c in baselines) + " |" for r in scored]
        lines += cost_table(scored)
        if group in correlations:
            table = correlations[group]
            kinds = list(next(iter(table.values())))
            n = next(iter(next(iter(table.values())).values())).n
            lines += ["", f"Correlations over {n} models:", ""]
            if n < 3:
                lines += [(f"(rank correlations need at least 3 models with AutoAttack accuracy; {n} so far, "
                           "so the coefficients are undefined, NaN)"), ""]
            lines += ["| score | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
            for score, row in table.items():
                lines.append(f"| {score} | " + " | ".join(str(row[k]) for k in kinds) + " |")
    return "\n".join(lines) + "\n"


def cost_table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown lines: each metric's median seconds per image and its median ratio to AutoAttack's.

    Empty when no row knows AutoAttack's cost (RobustBench does not publish it).
    """
    if not any(_finite(r["autoattack_seconds_per_image"]) for r in rows):
        return []
    lines = ["", ("Cost per image (medians over the models of wall time per image; AutoAttack's from "
                  "its model-info file; wall times depend on the machine and its load when each ran):"), "",
             "| metric | s / image | × AutoAttack's | models |", "|---|---:|---:|---:|"]
    attack = [r["autoattack_seconds_per_image"] for r in rows if _finite(r["autoattack_seconds_per_image"])]
    lines.append(f"| standard AutoAttack | {_format(float(np.median(attack)), 3)} | 1 | {len(attack)} |")
    for column, what in COSTS.items():
        pairs = [(r[column], r["autoattack_seconds_per_image"]) for r in rows
                 if _finite(r[column]) and _finite(r["autoattack_seconds_per_image"])]
        if pairs:
            seconds = float(np.median([p[0] for p in pairs]))
            ratio = float(np.median([p[0] / p[1] for p in pairs]))
            lines.append(f"| {what} | {_format(seconds, 3)} | {_format(ratio, 3)} | {len(pairs)} |")
    return lines


def plot(rows: list[dict[str, Any]], correlations: dict[str, dict[str, dict[str, Correlation]]], out: Path,
         score: str = "lambda_max_median") -> list[Path]:
    """Fisher vs AutoAttack accuracy, and clean vs AutoAttack accuracy coloured by Fisher."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    usable = [r for r in rows if r["status"] == "ok" and _finite(r["autoattack_acc"]) and _finite(r[score])]
    groups = sorted({f"{r['dataset']}/{r['threat_model']}" for r in usable})
    paths = [out / "fisher_vs_autoattack.png", out / "clean_vs_autoattack.png"]

    fig, ax = plt.subplots(figsize=(7, 5))
    for group in groups:
        members = [r for r in usable if f"{r['dataset']}/{r['threat_model']}" == group]
        rho = correlations.get(group, {}).get(score, {}).get("spearman_vs_autoattack")
        label = f"{group} (n={len(members)}, Spearman ρ = {rho})" if rho else group
        ax.scatter([r[score] for r in members], [r["autoattack_acc"] for r in members], label=label, alpha=0.8)
    ax.set_xscale("log")
    ax.set_xlabel(f"{score.replace('_', ' ')} of the input Fisher (log scale)")
    ax.set_ylabel("AutoAttack accuracy (%), reported")
    ax.set_title("Input-Fisher spectral norm vs AutoAttack accuracy")
    if groups:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(paths[0], dpi=130)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 5))
    clean = [r["reported_clean_acc"] if _finite(r["reported_clean_acc"]) else r["clean_acc"] for r in usable]
    points = ax.scatter(clean, [r["autoattack_acc"] for r in usable],
                        c=[math.log10(max(r[score], 1e-30)) for r in usable], cmap="viridis")
    fig.colorbar(points, ax=ax, label=f"log10 {score.replace('_', ' ')}")
    ax.set_xlabel("clean accuracy (%)")
    ax.set_ylabel("AutoAttack accuracy (%), reported")
    ax.set_title("Clean vs AutoAttack accuracy, coloured by the input-Fisher norm")
    fig.tight_layout()
    fig.savefig(paths[1], dpi=130)
    plt.close(fig)

    scores = [c for c in scores_of(usable) if c in BASELINE_SCORES]
    if scores:
        scores = [*SCORES, "predicted_robust_acc", *scores]
        paths.append(out / "scores_vs_autoattack.png")
        columns = 3
        fig, axes = plt.subplots(-(-len(scores) // columns), columns, figsize=(12, 3.3 * -(-len(scores) // columns)),
                                 squeeze=False)
        for ax, column in zip(axes.flat, scores):
            for group in groups:
                members = [r for r in usable if f"{r['dataset']}/{r['threat_model']}" == group and _finite(r[column])]
                ax.scatter([r[column] for r in members], [r["autoattack_acc"] for r in members], label=group, alpha=0.8)
            values = [r[column] for r in usable if _finite(r[column])]
            # Accuracies and means of log10 are on their own scale already; the rest are put on a log
            # axis when they spread over a decade or more (under a decade a log axis has no labelled tick).
            if (column != "predicted_robust_acc" and "log10" not in column and values and min(values) > 0
                    and max(values) / min(values) >= 10):
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel(column.replace("_", " "))
            ax.set_ylabel("AutoAttack accuracy (%)")
            ax.legend(fontsize=7)
        for ax in list(axes.flat)[len(scores):]:
            ax.set_visible(False)
        fig.suptitle("Every score against AutoAttack accuracy, per threat model")
        fig.tight_layout()
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


def render(results: Path, out: Path, seed: int = 0) -> dict[str, Any]:
    """Write the CSV, Markdown, correlations and plots for the results under ``results``.

    Args:
        results: directory that ``run`` wrote into.
        out: output directory (created).
        seed: bootstrap seed.

    Returns:
        ``{"rows": [...], "correlations": {...}, "files": [...]}``.

    Raises:
        FileNotFoundError: no result under ``results`` says ``"status": "ok"``.
        SettingsMismatchError: results of one dataset/threat model were scored with different settings.
    """
    records = load_results(results)
    how = ("`python -m leaderboard run --model-dir DIR` scores the models whose weights are under DIR "
           "(`python -m leaderboard list --model-dir DIR` shows which those are).")
    if not records:
        raise FileNotFoundError(
            f"nothing is scored under {results} (no <dataset>/<threat_model>/<model>.json there): {how}"
        )
    failed = [r for r in records if r.get("status") != "ok"]
    if len(failed) == len(records):
        first = failed[0]
        raise FileNotFoundError(
            f"nothing is scored under {results}: its {len(records)} result file(s) all record failures "
            f"(e.g. {first.get('dataset')}/{first.get('threat_model')}/{first.get('model')}: "
            f"{flatten(first)['error']}). Fix what they say, then {how}"
        )
    store.check_uniform_settings(records, results)
    rows = [flatten(r) for r in records]
    correlations = group_correlations(rows, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "leaderboard.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    (out / "leaderboard.md").write_text(markdown(rows, correlations))
    serialisable = {g: {s: {k: c.as_dict() for k, c in t.items()} for s, t in table.items()}
                    for g, table in correlations.items()}
    (out / "correlations.json").write_text(json.dumps(serialisable, indent=2, allow_nan=True) + "\n")
    files = [out / "leaderboard.csv", out / "leaderboard.md", out / "correlations.json", *plot(rows, correlations, out)]
    return {"rows": rows, "correlations": correlations, "files": files}


def add_arguments(parser: argparse.ArgumentParser, default_results: str = "leaderboard/results") -> None:
    """The ``render`` subcommand's options."""
    parser.add_argument("--results", type=Path, default=Path(default_results),
                        help=f"directory written by `run` (default: {default_results})")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: --results)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")


def run_from_args(args: argparse.Namespace) -> int:
    """Render, then print the correlations of the main score per group."""
    rendered = render(args.results, args.out or args.results, seed=args.seed)
    print((Path(args.out or args.results) / "leaderboard.md").read_text())
    for group, (mean, count) in mean_abs_errors(rendered["rows"]).items():
        print(f"{group}: mean |predicted − AutoAttack| robust accuracy {mean:.2f} points over {count} models")
    for group, table in rendered["correlations"].items():
        n = table["lambda_max_median"]["spearman_vs_autoattack"].n
        print(f"\n{group}: correlations with reported AutoAttack accuracy ({n} models)")
        if n < 3:
            print(f"  rank correlations need at least 3 models with AutoAttack accuracy; {n} so far (NaN below)")
        for score, row in table.items():
            print(f"  {score:<28} Spearman {row['spearman_vs_autoattack']}   Kendall {row['kendall_vs_autoattack']}"
                  f"   partial|clean {row['partial_spearman_vs_autoattack_given_clean']}")
    print("\nwrote " + ", ".join(str(p) for p in rendered["files"]))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m leaderboard.render``: the render subcommand on its own."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
