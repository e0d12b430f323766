"""Render scored models: a CSV, a Markdown leaderboard, correlations, plots and an HTML page.

    python -m leaderboard render [--results leaderboard/results] [--out DIR] [--allow-partial]
                                 [--n-resamples 2000]

Reads every ``<results>/<dataset>/<threat_model>/<model>.json`` written by ``run`` and its
per-image ``.npz``, each checked first, and names and skips every file that fails a check: the
reader's (:mod:`leaderboard.read_results`: not UTF-8, not JSON, a field of the wrong type, an
``.npz`` that does not match the SHA-256 its JSON records; any exception the reader raises on one
file), the display's (:mod:`leaderboard.display_checks`: a number outside its range, a name too
long, nesting too deep), and a scored result whose settings differ from those of the other models
of its dataset/threat model (the settings that differ are named). It writes

* ``leaderboard.csv``: one row per scored model (text cells that a spreadsheet would run as a
  formula start with ``'``);
* ``leaderboard.md``: per dataset, threat model and budget, the models ranked by AutoAttack
  accuracy (with its Wilson 95% interval) beside their Fisher statistics and their predicted
  (attack-free) robust accuracy, refined and first-order where both are stored, with the absolute
  difference of the better one (refined where stored) from the reported one, the mean of that
  difference over the models, then the correlation table; every value from a file is escaped;
* ``correlations.json``: every coefficient with its bootstrap interval, and beside each score's
  coefficients the leave-one-model-out isotonic error of the score calibrated to AutoAttack
  accuracy (``isotonic_loo_vs_autoattack``), the predicted accuracy's uncalibrated error
  (``uncalibrated_abs_error_vs_autoattack``) and its cost beside AutoAttack's
  (``cost_vs_autoattack``; :mod:`leaderboard.tracking`);
* ``fisher_vs_autoattack.png``, ``predicted_vs_autoattack.png`` (with the identity line),
  ``clean_vs_autoattack.png`` (one panel per dataset/threat model) and
  ``accuracy_vs_eps_<dataset>_<threat_model>.png`` (each model's predicted accuracy-vs-ε curve from
  its stored radii, with AutoAttack's measured points);
* ``index.html``: all of it as one self-contained page (:mod:`leaderboard.html_page`);
* where results carry baselines (the project's zoo, ``run --source zoo``): their columns, their
  correlations beside the Fisher scores', a cost table (seconds per image of every metric and
  its ratio to AutoAttack's, from the ``attack_seconds`` of each model's model-info file), and
  ``scores_vs_autoattack.png`` (every score against AutoAttack accuracy).

Every output is written into a temporary folder inside ``--out`` and moved into place only when
all of them are written, so a failure leaves the previous outputs as they were.
Correlations are computed within each dataset/threat model (AutoAttack accuracies at
different threat models are not comparable), over models with a reported AutoAttack accuracy.
The command exits with status 1 when it skipped a file, unless ``--allow-partial`` is given.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from leaderboard import board_markdown, html_page, labels, plots, tracking
from leaderboard.baselines import BASELINES
from leaderboard.checked_read import read_checked
from leaderboard.model_curves import ModelCurve, model_curve
from leaderboard.read_results import ResultFile, Skipped, finite_number, paper_link
from leaderboard.record import ResultRecord
from leaderboard.registry import MODEL_INFO_DIR
from leaderboard.render_options import N_RESAMPLES, add_arguments
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
#: Each score's seconds-per-image column: the Fisher scores and the prediction share one pass.
SCORE_COST_COLUMNS = {
    **{score: "fisher_seconds_per_image" for score in (*SCORES, "predicted_robust_acc")},
    **BASELINE_COST_COLUMNS,
}
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
    "predicted_first_order", "predicted_abs_error", "proven_refined", "proven_first_order",
    *BASELINE_SCORES,
    "method", "seconds", *COSTS, "autoattack_seconds_per_image", "status", "error",
    "budget", "autoattack_n", "reported_clean_n",
)
#: What a spreadsheet runs as a formula when a text cell starts with it (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


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
    # Percent of the inputs whose radius is proven the minimum over all classes (the others count
    # as not robust); absent from results written before it was recorded.
    row["proven_first_order"] = prediction.get("proven_first_order")
    row["proven_refined"] = prediction.get("proven_refined")
    row["predicted_abs_error"] = (
        abs(predicted - row["autoattack_acc"]) if _finite(predicted)
        and _finite(row["autoattack_acc"]) else None
    )
    row["method"] = record.method
    row.update(_baseline_columns(record))
    row.update(_sample_sizes(record))
    return row


def _sample_sizes(record: ResultRecord) -> dict[str, Any]:
    """The budget, and the images the reported AutoAttack and clean accuracies were measured on.

    A model-info file that says (the zoo's ``attack_n_examples``) is believed; otherwise a reported
    accuracy is RobustBench's, measured on its full test set for the dataset.
    """
    reported = record.reported
    threat = record.threat_model
    main = (record.predicted_robust_acc or {}).get(threat) or {}
    attacked = reported.attack_n_examples
    if not (isinstance(attacked, int) and attacked > 0):
        attacked = labels.ROBUSTBENCH_TEST_IMAGES.get(record.dataset)
    return {
        "budget": labels.budget_text(reported.eps, threat)
        or labels.budget_text(main.get("eps"), threat),
        "autoattack_n": attacked if _finite(reported.autoattack_acc) else None,
        "reported_clean_n": attacked if _finite(reported.clean_acc) else None,
    }


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
        # The baseline's own aggregate (ART's mean for GREAT Score); results scored before it was
        # recorded hold the median only.
        row[column] = entry.get("score", entry.get("median"))
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
    return finite_number(value)


def attacked_groups(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """``dataset/threat_model -> its scored rows with a reported AutoAttack accuracy``."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["status"] == "ok" and _finite(row["autoattack_acc"]):
            groups[f"{row['dataset']}/{row['threat_model']}"].append(row)
    return dict(sorted(groups.items()))


def group_correlations(rows: list[dict[str, Any]], seed: int = 0,
                       n_resamples: int = 2000) -> dict[str, dict[str, dict[str, Correlation]]]:
    """Correlations per ``dataset/threat_model`` and score, over models with AutoAttack accuracy."""
    out: dict[str, dict[str, dict[str, Correlation]]] = {}
    for group, members in attacked_groups(rows).items():
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


def group_tracking(rows: list[dict[str, Any]],
                   correlations: dict[str, dict[str, dict[str, Correlation]]]
                   ) -> dict[str, list[tracking.Tracking]]:
    """Per ``dataset/threat_model``: which score tracks AutoAttack (:mod:`leaderboard.tracking`).

    Every correlated score with its Spearman coefficient, calibrated and (for the prediction)
    uncalibrated error and cost, most closely tracking first; groups of fewer than 3 models with
    AutoAttack accuracy have none.
    """
    errors = mean_abs_errors(rows)
    return {group: tracking.tracking_table(members, correlations.get(group, {}),
                                           SCORE_COST_COLUMNS, errors.get(group))
            for group, members in attacked_groups(rows).items() if len(members) >= 3}


def correlations_json(correlations: dict[str, dict[str, dict[str, Correlation]]],
                      tracked: dict[str, list[tracking.Tracking]]) -> dict[str, Any]:
    """The content of ``correlations.json``: ``group -> score -> kind -> coefficient``.

    Beside each score's coefficients: its calibration, uncalibrated error and cost
    (:meth:`leaderboard.tracking.Tracking.to_json`).
    """
    out: dict[str, Any] = {
        group: {score: {k: c.as_dict() for k, c in kinds.items()} for score, kinds in table.items()}
        for group, table in correlations.items()
    }
    for group, rows in tracked.items():
        for row in rows:
            out[group][row.score].update(row.to_json())
    return out


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
        cost = tracking.cost_of(rows, column)
        if cost is not None:
            summary.append((what, cost.seconds, cost.ratio, cost.n))
    return summary


#: What the cost tables say about their numbers.
COST_NOTE = (
    "medians over the models of wall time per image; AutoAttack's from its model-info file; "
    "wall times depend on the machine and its load when each ran"
)


def csv_text(rows: list[dict[str, Any]]) -> str:
    """The rows as CSV; a text cell that a spreadsheet would run as a formula starts with ``'``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: f"'{v}" if isinstance(v, str) and v.startswith(FORMULA_STARTS) else v
                         for k, v in row.items()})
    return buffer.getvalue()


def model_curves(results: list[ResultFile], curve_dir: Path | None,
                 skipped: list[Skipped]) -> dict[str, ModelCurve]:
    """``dataset/threat_model/model -> curve``.

    One for every scored result that stores radii at its threat model; a result whose radii
    cannot make a curve is named in ``skipped`` and drawn without one.
    """
    curves = {}
    for result in results:
        if result.record.ok and result.per_image is not None:
            try:
                curve = model_curve(result, curve_dir, skipped)
            except Exception as exc:  # a curve a file cannot give is skipped, never the page
                skipped.append(Skipped(f"{result.path.parent.name}/{result.path.name}",
                                       f"no accuracy-vs-ε curve ({type(exc).__name__}: "
                                       f"{str(exc)[:200]})"))
                continue
            if curve is not None:
                curves[f"{curve.dataset}/{curve.threat_model}/{curve.model}"] = curve
    return curves


def _file_stem(text: str) -> str:
    """A file-name-safe form of a group's name (the display checks keep it short)."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "-" for c in text)


def write_figures(rows: list[dict[str, Any]],
                  correlations: dict[str, dict[str, dict[str, Correlation]]],
                  curves: dict[str, ModelCurve], out: Path, titles: dict[str, str],
                  progress: tqdm) -> tuple[list[Path], dict[str, str], dict[str, str]]:
    """Write every PNG into ``out``.

    Returns their paths, each scatter figure as inline SVG and each curve as a data URI.
    """
    paths, svgs, curve_images = [], {}, {}
    with plots.style():
        scatter = plots.scatter_figures(rows, correlations, titles=titles)
        groups = {f"{c.dataset}/{c.threat_model}" for c in curves.values()}
        # Every figure to come, and the page after them.
        progress.total = progress.n + len(scatter) + len(curves) + len(groups) + 1
        progress.refresh()
        for figure in scatter:
            paths.append(out / f"{figure.name}.png")
            paths[-1].write_bytes(plots.png(figure))
            svgs[figure.name] = plots.svg(figure)
            plots.close([figure])
            progress.update()
        by_group: dict[str, list[ModelCurve]] = defaultdict(list)
        for key, curve in curves.items():
            by_group[f"{curve.dataset}/{curve.threat_model}"].append(curve)
            figure = plots.curve_figure(curve)
            curve_images[key] = plots.png_data_uri(figure)
            plots.close([figure])
            progress.update()
        for group, members in sorted(by_group.items()):
            figure = plots.curves_grid_figure(members, titles.get(group, group))
            paths.append(out / f"accuracy_vs_eps_{_file_stem(group.replace('/', '_'))}.png")
            paths[-1].write_bytes(plots.png(figure))
            plots.close([figure])
            progress.update()
    return paths, svgs, curve_images


def stamp() -> html_page.Stamp:
    """When (UTC) and from which git commit of the project this render runs.

    ``SOURCE_DATE_EPOCH``, where set, gives the time (for builds that must be reproducible); the
    commit says ``+ local changes`` when tracked Python files differ from it, and is ``None``
    outside a git checkout.
    """
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (datetime.fromtimestamp(int(epoch), timezone.utc) if epoch and epoch.isdigit()
            else datetime.now(timezone.utc))
    root = Path(__file__).resolve().parents[1]
    commit = None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        # Code only: the outputs a render replaces are tracked files too.
        changed = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                  "--untracked-files=no", "--", "*.py"], capture_output=True,
                                 text=True, timeout=10, check=True).stdout.strip()
        commit = head + (" + local changes" if changed else "") if head else None
    except (OSError, subprocess.SubprocessError):
        commit = None  # not a git checkout, or git is not installed: the page says so
    return html_page.Stamp(when.strftime("%Y-%m-%d %H:%M UTC"), commit)


def group_titles(rows: list[dict[str, Any]]) -> dict[str, str]:
    """``dataset/threat_model -> "CIFAR-10, ℓ∞, ε = 8/255"``, the budget the models share."""
    budgets: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        group = f"{row['dataset']}/{row['threat_model']}"
        budgets[group].update([row["budget"]] if row.get("budget") else [])
    return {group: labels.group_title(*group.split("/", 1),
                                      " or ".join(sorted(b)) if b else None)
            for group, b in budgets.items()}


@contextmanager
def staged(out: Path) -> Iterator[Path]:
    """A temporary folder inside ``out`` for the outputs, moved into ``out`` only on success.

    Each file replaces its namesake in ``out`` (``os.replace``, atomic per file) after every file
    is written; on an exception nothing in ``out`` changes. The folder is removed either way.
    """
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".render-", dir=out))
    try:
        yield staging
        for path in sorted(staging.iterdir()):
            os.replace(path, out / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def render(results: Path, out: Path, seed: int = 0, autoattack_curves: Path | None = None,
           n_resamples: int = N_RESAMPLES, progress: bool = False) -> dict[str, Any]:
    """Write the CSV, Markdown, correlations, plots and HTML page for the results under ``results``.

    Args:
        results: directory that ``run`` wrote into.
        out: output directory (created); its files are replaced only once all are written.
        seed: bootstrap seed.
        autoattack_curves: folder of further AutoAttack budgets
            (``<dataset>/<threat_model>/<model>_eps<label>.json``); ``None`` or absent: none.
        n_resamples: bootstrap resamples of each correlation's interval.
        progress: show a progress bar (on stderr).

    Returns:
        ``{"rows": [...], "correlations": {...}, "curves": {...}, "skipped": [Skipped, ...],
        "files": [...], "titles": {...}, "tracked": {...}}``; ``skipped`` lists every file left
        out, with its reason; ``tracked`` is :func:`group_tracking`'s.

    Raises:
        FileNotFoundError: no usable result under ``results`` says ``"status": "ok"``.
    """
    bar = tqdm(total=4, desc="render", unit="step", disable=not progress, leave=False)
    try:
        return _render(results, out, seed, autoattack_curves, n_resamples, bar)
    finally:
        bar.close()


def _nothing_scored(results: Path, records: list[ResultRecord], skipped: list[Skipped]) -> str:
    how = (
        "`python -m leaderboard run --model-dir DIR` scores the models whose weights are under DIR "
        "(`python -m leaderboard list --model-dir DIR` shows which those are)."
    )
    unusable = (
        f" ({len(skipped)} file(s) skipped: {'; '.join(map(str, skipped[:3]))})" if skipped else ""
    )
    if not records:
        return (f"nothing is scored under {results} (no usable "
                f"<dataset>/<threat_model>/<model>.json there{unusable}): {how}")
    first = records[0]
    return (f"nothing is scored under {results}: its {len(records)} result file(s) all record "
            f"failures (e.g. {first.key}: {flatten(first)['error']}){unusable}. Fix what they say, "
            f"then {how}")


def _render(results: Path, out: Path, seed: int, autoattack_curves: Path | None,
            n_resamples: int, bar: tqdm) -> dict[str, Any]:
    bar.set_postfix_str("reading results")
    read = read_checked(results)
    skipped = list(read.skipped)
    records = [r.record for r in read.results]
    if not any(r.ok for r in records):
        raise FileNotFoundError(_nothing_scored(results, records, skipped))
    rows = [flatten(r) for r in records]
    bar.update()
    bar.set_postfix_str(f"correlations ({n_resamples:,} bootstrap resamples)")
    correlations = group_correlations(rows, seed=seed, n_resamples=n_resamples)
    tracked = group_tracking(rows, correlations)
    bar.update()
    curves = model_curves(read.results, autoattack_curves, skipped)
    titles = group_titles(rows)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[f"{row['dataset']}/{row['threat_model']}"].append(row)
    costs = {g: cost_summary([r for r in members if r["status"] == "ok"])
             for g, members in groups.items()}
    errors = mean_abs_errors(rows)
    table = csv_text(rows)
    with staged(out) as staging:
        bar.set_postfix_str("figures")
        pngs, svgs, curve_images = write_figures(rows, correlations, curves, staging, titles, bar)
        bar.set_postfix_str("page")
        (staging / "leaderboard.csv").write_text(table, encoding="utf-8")
        (staging / "leaderboard.md").write_text(board_markdown.markdown(
            rows, correlations, skipped, titles=titles, errors=errors,
            costs={g: (c, COST_NOTE) for g, c in costs.items() if c},
            baseline_columns=list(BASELINE_SCORES), tracked=tracked), encoding="utf-8")
        (staging / "correlations.json").write_text(
            json.dumps(correlations_json(correlations, tracked), indent=2, allow_nan=True) + "\n",
            encoding="utf-8")
        links = {
            f"{r['dataset']}/{r['threat_model']}/{r['model']}": paper_link(
                MODEL_INFO_DIR, r["dataset"], r["threat_model"], r["model"]
            )
            for r in rows
        }
        page = html_page.page(html_page.PageData(
            rows=rows, records=[r.to_json() for r in records], correlations=correlations,
            errors=errors,
            skipped=skipped, figures=svgs, curves=curves, curve_images=curve_images,
            links={k: v for k, v in links.items() if v}, costs=costs, cost_note=COST_NOTE,
            n_resamples=n_resamples, titles=titles, csv=table, stamp=stamp(), tracked=tracked,
        ))
        (staging / "index.html").write_text(page, encoding="utf-8")
        bar.update()
    names = ["leaderboard.csv", "leaderboard.md", "correlations.json",
             *(p.name for p in pngs), "index.html"]
    return {"rows": rows, "correlations": correlations, "curves": curves, "skipped": skipped,
            "files": [out / name for name in names], "titles": titles, "tracked": tracked}


def summary_lines(rendered: dict[str, Any], main_score: str = "spectral_norm_median") -> list[str]:
    """What the command prints: per group its models, mean error and main correlations."""
    errors = mean_abs_errors(rendered["rows"])
    lines = []
    for group, title in sorted(rendered["titles"].items()):
        scored = sum(r["status"] == "ok" and f"{r['dataset']}/{r['threat_model']}" == group
                     for r in rendered["rows"])
        lines.append(f"{title}: {scored} scored model(s)")
        if group in errors:
            mean, count = errors[group]
            lines.append(f"  mean |predicted − AutoAttack| robust accuracy {mean:.2f} points over "
                         f"{count} models")
        table = rendered["correlations"].get(group, {})
        for score in (main_score, "predicted_robust_acc"):
            if score not in table:
                continue
            row = table[score]
            n = row["spearman_vs_autoattack"].n
            if n < 3:
                lines.append(f"  rank correlations need at least 3 models with AutoAttack "
                             f"accuracy; {n} so far")
                break
            lines.append(f"  {labels.score_label(score)} vs AutoAttack ({n} models): Spearman "
                         f"{row['spearman_vs_autoattack']}, Kendall {row['kendall_vs_autoattack']},"
                         f" partial | clean {row['partial_spearman_vs_autoattack_given_clean']}")
    return lines


def run_from_args(args: argparse.Namespace) -> int:
    """Render with a progress bar, then print a short summary and the files written."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm():
        rendered = render(args.results, args.out or args.results, seed=args.seed,
                          autoattack_curves=getattr(args, "autoattack_curves", None),
                          n_resamples=getattr(args, "n_resamples", N_RESAMPLES),
                          progress=True)
    print("\n".join(summary_lines(rendered)))
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
