"""The leaderboard as one self-contained HTML page (``index.html``).

The page holds everything inline: its CSS and a few lines of JavaScript
(:mod:`leaderboard.page_assets`: sorting, filtering, details), the scatter plots as inline SVG
(each point's ``<title>`` names its model), each model's accuracy-vs-ε curve as a PNG data URI
and the CSV as a download link (a data URI). It loads nothing from elsewhere, so it opens offline
and from an e-mail attachment; links to papers are plain links.

Layout: a header saying when and from which commit the page was rendered, with the CSV one click
away; then per dataset, threat model and budget a table of the scored models, most robust first
(sortable by every column, filterable by name, architecture and training), whose accuracies
carry their sample size and Wilson 95% interval, and in which each model's "details" button
(beside its name) opens, under its row, the model's curve and the provenance of its numbers;
the few columns a RobustBench reader looks for are shown, the others one tick away, and every
column is explained in words on the page (touch screens show no tooltips). Under it, which
attack-free score tracks AutoAttack (:mod:`leaderboard.tracking`): every score sorted by
``|ρ_Spearman|`` with its interval, its calibrated error, the prediction's uncalibrated error and
each score's cost beside AutoAttack's. Where some model's radii are not all proven minimal over
all classes, the table shows the proven percentage and a model's details show it per threat
model. Then the models that failed, the correlation tables, the plots, the files that were
skipped and what the numbers mean.

Every value read from a result file is escaped and every name sits in a ``<bdi>``, so that
right-to-left text in one name cannot reorder what is around it; every id is unique, including
those inside the inline SVGs.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from typing import Any

from leaderboard import labels
from leaderboard.model_curves import ModelCurve
from leaderboard.page_assets import CSS, SCRIPT
from leaderboard.read_results import AutoAttackPoint, Skipped, finite_number
from leaderboard.stats import Correlation, accuracy_interval
from leaderboard.tracking import Tracking

#: Keys of a result JSON shown as the provenance of its numbers, in this order.
PROVENANCE_KEYS = ("settings", "method", "route", "device", "seed", "batch_size", "versions",
                   "images",
                   "checkpoints", "checkpoint_load", "per_image", "seconds", "shared_from",
                   "reported")

#: Captions of the scatter figures, by name.
FIGURE_CAPTIONS = {
    "fisher_vs_autoattack": "Median λ_max of the input Fisher against AutoAttack accuracy.",
    "predicted_vs_autoattack": ("Predicted (attack-free) robust accuracy against AutoAttack "
                                "accuracy; points on "
                                "the dashed identity line are predicted exactly."),
    "clean_vs_autoattack": ("Clean against AutoAttack accuracy, one panel per dataset and threat "
                            "model, coloured by log10 median λ_max."),
    "scores_vs_autoattack": "Every score against AutoAttack accuracy.",
}

#: Score columns of a model table, in order; the first is shown by default, the others with
#: "all columns". A score added to :data:`leaderboard.labels.SCORES` and here gets its column.
TABLE_SCORES = ("spectral_norm_median", "trace_median", "blackbox_spectral_norm_median",
                "reference_spectral_norm_median", "clever_median", "great_score",
                "logit_margin_median", "gradient_norm_median")
SHOWN_SCORES = ("spectral_norm_median",)


@dataclass(frozen=True)
class Stamp:
    """When and from which code a page was rendered (see :func:`leaderboard.render.stamp`)."""

    date: str
    commit: str | None


@dataclass
class PageData:
    """What the page shows.

    Attributes:
        rows: rows of :func:`leaderboard.render.flatten`, one per result.
        records: the result JSONs the rows come from, in the same order.
        correlations: ``group -> score -> kind -> Correlation``.
        errors: ``group -> (mean |predicted − AutoAttack|, models)``.
        skipped: the files left out, with their reasons.
        figures: scatter figure name -> inline ``<svg>``.
        curves: ``dataset/threat_model/model -> ModelCurve``.
        curve_images: the same keys -> PNG data URI of the curve.
        costs: ``[(metric, s / image, × AutoAttack's, models)]`` per group.
        links: ``dataset/threat_model/model -> paper URL``.
        cost_note: what the cost tables' numbers are.
        n_resamples: bootstrap resamples of each correlation's interval.
        titles: ``group -> heading`` naming dataset, threat model and budget.
        csv: the CSV text, offered as a download.
        stamp: when and from which commit the page was rendered (``None``: not said).
        tracked: ``group -> which score tracks AutoAttack``, most closely first.
    """

    rows: list[dict[str, Any]]
    records: list[dict[str, Any]]
    correlations: dict[str, dict[str, dict[str, Correlation]]]
    errors: dict[str, tuple[float, int]] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)
    curves: dict[str, ModelCurve] = field(default_factory=dict)
    curve_images: dict[str, str] = field(default_factory=dict)
    costs: dict[str, list[tuple[str, float, float, int]]] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    cost_note: str = ""
    n_resamples: int = 2000
    titles: dict[str, str] = field(default_factory=dict)
    csv: str = ""
    stamp: Any = None
    tracked: dict[str, list[Tracking]] = field(default_factory=dict)


class Ids:
    """Ids unique on the page: a readable slug, with ``-2``, ``-3`` … where one repeats.

    Names that differ only in punctuation (``vgg-standard``, ``vgg_standard``) share a slug;
    they still get ids of their own.
    """

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, prefix: str, text: str = "") -> str:
        """A new id ``prefix-slug(text)``, never returned before."""
        slug = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-"
                       for c in text)[:60]
        base = f"{prefix}-{slug}" if slug else prefix
        candidate, k = base, 2
        while candidate in self.used:
            candidate, k = f"{base}-{k}", k + 1
        self.used.add(candidate)
        return candidate


def name_html(name: Any) -> str:
    """A model's name, escaped and isolated from the text around it (``<bdi>``)."""
    return f"<bdi>{escape(str(name))}</bdi>"


@dataclass(frozen=True)
class Column:
    """A column of a model table.

    Attributes:
        header: its heading.
        value: the cell's value from a row.
        meaning: what it is, in words (shown under the table).
        numeric: sort numerically (by the raw value), else by text.
        digits: significant digits of a number; ``None``: percent with one decimal; 0: integer.
        n: the images an accuracy was measured on (its cell shows the Wilson 95% interval).
        first: the direction of the first click: the one that puts the most robust models first.
        extra: shown only with "all columns".
        key: the column's identifier (a CSV column where it is one).
    """

    header: str
    value: Callable[[dict[str, Any]], Any]
    meaning: str = ""
    numeric: bool = True
    digits: int | None = 3
    n: Callable[[dict[str, Any]], Any] | None = None
    first: str = "descending"
    extra: bool = False
    key: str = ""


def _first_finite(row: dict[str, Any], first: str, second: str) -> Any:
    """``row[first]`` when it is a finite number, else ``row.get(second)``."""
    return row[first] if finite_number(row.get(first)) else row.get(second)


def _clean_n(row: dict[str, Any]) -> Any:
    return (row.get("reported_clean_n") if finite_number(row.get("reported_clean_acc"))
            else row.get("n_examples"))


def _score_column(key: str) -> Column:
    score = labels.SCORES[key]
    return Column(score.label, lambda r: r.get(key), meaning=score.meaning,
                  first="descending" if score.higher_is_robust else "ascending",
                  extra=key not in SHOWN_SCORES, key=key)


def columns_for(rows: list[dict[str, Any]]) -> list[Column]:
    """The columns of one group's table: those with a value for at least one of its models."""
    refined = any(finite_number(r.get("predicted_refined")) for r in rows)
    candidates = [
        Column("rank", lambda r: r.get("_rank"), "by AutoAttack accuracy, most robust first",
               digits=0, first="ascending", key="rank"),
        Column("model", lambda r: r["model"], "the model's name; its paper where RobustBench "
               "links one; under it, its architecture and training", numeric=False,
               first="ascending", key="model"),
        Column("architecture", lambda r: r.get("architecture"), "the network", numeric=False,
               first="ascending", extra=True, key="architecture"),
        Column("training", lambda r: r.get("training"), "how the model was trained (the "
               "project's zoo)", numeric=False, first="ascending", extra=True, key="training"),
        Column("extra data", lambda r: {True: "yes", False: "no"}.get(r.get("additional_data")),
               "trained with data beyond the dataset's training set", numeric=False,
               first="ascending", extra=True, key="additional_data"),
        Column("AutoAttack %", lambda r: r.get("autoattack_acc"),
               "accuracy under standard AutoAttack at the budget in the heading, with its Wilson "
               "95% interval over the images it was run on", digits=None,
               n=lambda r: r.get("autoattack_n"), key="autoattack_acc"),
        Column("clean %", lambda r: _first_finite(r, "reported_clean_acc", "clean_acc"),
               "accuracy on unperturbed test images as reported (else measured on the scored "
               "images), with its Wilson 95% interval", digits=None, n=_clean_n,
               key="clean_acc"),
        Column("predicted %", lambda r: r.get("predicted_robust_acc"),
               labels.SCORES["predicted_robust_acc"].meaning + ", with its Wilson 95% interval",
               digits=None, n=lambda r: r.get("n_examples"), key="predicted_robust_acc"),
        Column("predicted, first-order %", lambda r: r.get("predicted_first_order"),
               "the same from the first-order radii alone", digits=None,
               n=lambda r: r.get("n_examples"), extra=True, key="predicted_first_order"),
        Column("|predicted − AutoAttack|", lambda r: r.get("predicted_abs_error"),
               "how far the prediction is from AutoAttack's accuracy, in points", digits=None,
               first="ascending", key="predicted_abs_error"),
        Column("proven %", labels.proven_of, labels.PROVEN_NOTE.split(": ", 1)[1], digits=None,
               key="proven"),
        *(_score_column(key) for key in TABLE_SCORES),
        Column("Fisher s/image", lambda r: r.get("fisher_seconds_per_image"),
               "wall time per image of the exact Fisher pass", first="ascending", extra=True,
               key="fisher_seconds_per_image"),
        Column("AutoAttack s/image", lambda r: r.get("autoattack_seconds_per_image"),
               "wall time per image of standard AutoAttack, from the model-info file",
               first="ascending", extra=True, key="autoattack_seconds_per_image"),
    ]
    always = {"rank", "model", "AutoAttack %"}
    # The proven percentage only where some model's is below 100% (the ten-class zoo's never is).
    shown = {"predicted_first_order": refined, "proven": labels.some_unproven(rows)}
    return [c for c in candidates if c.header in always
            or shown.get(c.key, True) and any(c.value(r) not in (None, "") for r in rows)]


def _number(value: Any, digits: int | None) -> str:
    if not finite_number(value):
        return ""
    if digits is None:
        return f"{value:.1f}"
    if digits == 0:
        return f"{value:.0f}"
    return f"{value:.{digits}g}"


def _cell(column: Column, row: dict[str, Any], link: str | None, toggle: str) -> str:
    value = column.value(row)
    extra = " extra" if column.extra else ""
    if column.key == "model":
        name = name_html(value)
        if link:
            name = f'<a href="{escape(link)}" rel="noopener">{name}</a>'
        sub = " · ".join(escape(str(row[k])) for k in ("architecture", "training") if row.get(k))
        return (f'<td class="name" data-v="{escape(str(value).lower())}">{name} {toggle}'
                f'{f"<span class=sub>{sub}</span>" if sub else ""}</td>')
    if column.numeric:
        sort = f' data-v="{float(value)!r}"' if finite_number(value) else ""
        interval = accuracy_interval(value, column.n(row)) if column.n else None
        ci = (f'<span class="ci" title="Wilson 95% interval over {column.n(row):,} images">'
              f"{interval[0]:.1f}–{interval[1]:.1f}</span>" if interval else "")
        return f'<td class="num{extra}"{sort}>{_number(value, column.digits)}{ci}</td>'
    text = escape("" if value is None else str(value))
    return f'<td class="{extra.strip()}">{text}</td>' if extra else f"<td>{text}</td>"


def _flat(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``(dotted key, leaf)`` pairs of a JSON value.

    Keys read like ``images.file_sha256`` or ``checkpoints[0].sha256``. The display checks
    bound the nesting depth, so the recursion is bounded too.
    """
    if isinstance(value, dict):
        return [
            pair
            for k, v in value.items()
            if k != "values"  # the baselines' per-image values stay in the JSON
            for pair in _flat(v, f"{prefix}.{k}" if prefix else str(k))
        ]
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        return [pair for i, v in enumerate(value) for pair in _flat(v, f"{prefix}[{i}]")]
    return [(prefix, value)]


def _leaf_text(leaf: Any) -> str:
    return "null" if leaf is None else str(leaf)


def _recorded(value: Any) -> bool:
    """Whether a provenance field holds anything (a typed record fills absent blocks with nulls)."""
    if isinstance(value, dict):
        return any(_recorded(v) for v in value.values())
    return value is not None and value != []


def provenance_html(record: dict[str, Any]) -> str:
    """The provenance of one result, one row per field.

    The fields are the settings, versions, device, hashes and timings.
    """
    shown = {key: record[key] for key in PROVENANCE_KEYS if _recorded(record.get(key))}
    if not shown:
        if record.get("status", "ok") != "ok":
            return "<p>The run recorded no provenance with this failure.</p>"
        return "<p>This result records none of the provenance fields.</p>"
    lines = "".join(
        f"<tr><th>{escape(key)}</th><td><code>{escape(_leaf_text(leaf))}</code></td></tr>"
        for key, leaf in _flat(shown)
    )
    return f'<table class="prov"><tbody>{lines}</tbody></table>'


def _point_text(point: AutoAttackPoint, threat_model: str) -> str:
    """``ε = 4/255: 45.0% (n = 500; Wilson 95%: 40.6–49.4%, file)``."""
    interval = accuracy_interval(point.accuracy, point.n_examples)
    size = (f"n = {point.n_examples:,}; Wilson 95%: {interval[0]:.1f}–{interval[1]:.1f}%"
            if interval else "n = ?")
    return (f"ε = {labels.budget_text(point.eps, threat_model)}: {point.accuracy:.1f}% "
            f"({size}, {escape(point.source)})")


def _curve_html(curve: ModelCurve | None, image: str | None) -> str:
    if curve is None or image is None:
        return ('<p class="note">No accuracy-vs-ε curve: this result stores no radii at its '
                "threat model.</p>")
    points = "".join(f"<li>{_point_text(p, curve.threat_model)}</li>" for p in curve.autoattack)
    measured = (
        f"<p>AutoAttack measured:</p><ul>{points}</ul>" if points
        else "<p>No AutoAttack point stored.</p>"
    )
    kinds = "first-order and refined radii" if curve.refined is not None else "first-order radii"
    return (f'<figure class="curve"><img alt="accuracy vs eps of {escape(curve.model)}" '
            f'width="640" height="400" src="{image}">'
            f"<figcaption>Predicted from the stored {kinds}; squares: "
            f"AutoAttack.</figcaption></figure>{measured}")


def proven_html(record: dict[str, Any]) -> str:
    """Per threat model, the percent of a model's radii proven minimal over all classes.

    Empty unless one of them is below 100% (then each threat model's is listed).
    """
    entries = [(threat, prediction) for threat, prediction in
               (record.get("predicted_robust_acc") or {}).items() if isinstance(prediction, dict)]
    values = [p.get(k) for _, p in entries for k in ("proven_first_order", "proven_refined")]
    if not any(finite_number(v) and v < 100.0 for v in values):
        return ""
    items = []
    for threat, prediction in entries:
        kinds = [f"{kind} {prediction[f'proven_{key}']:.1f}%" for key, kind in
                 (("first_order", "first-order"), ("refined", "refined"))
                 if finite_number(prediction.get(f"proven_{key}"))]
        if kinds:
            budget = labels.budget_text(prediction.get("eps"), threat)
            items.append(f"<li>{escape(labels.THREATS.get(threat, threat))}"
                         f"{f' (ε = {escape(budget)})' if budget else ''}: "
                         f"{escape(', '.join(kinds))}</li>")
    return (f'<div class="proven"><p>Radii proven minimal over all classes (the other images '
            f"count as not robust):</p><ul>{''.join(items)}</ul></div>")


def _ranked(members: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Scored models by AutoAttack accuracy, best first, each with its ``_rank``."""
    members = sorted(members, key=lambda r: (not finite_number(r["autoattack_acc"]),
                                             -(r["autoattack_acc"]
                                               if finite_number(r["autoattack_acc"]) else 0.0),
                                             r["model"]))
    return [{**r, "_rank": i + 1 if finite_number(r["autoattack_acc"]) else None}
            for i, r in enumerate(members)]


def _header(column: Column) -> str:
    classes = " ".join(c for c in ("name" if column.key == "model" else "",
                                   "extra" if column.extra else "") if c)
    attributes = f' class="{classes}"' if classes else ""
    # The table starts ranked by AutoAttack accuracy, most robust first, and says so.
    if column.key == "autoattack_acc":
        attributes += ' aria-sort="descending"'
    return (f'<th{attributes} data-sort="{"num" if column.numeric else "text"}" '
            f'data-first="{column.first}" tabindex="0">{escape(column.header)}</th>')


def _legend(columns: list[Column]) -> str:
    items = "".join(f"<dt>{escape(c.header)}{' (with all columns)' if c.extra else ''}</dt>"
                    f"<dd>{escape(c.meaning)}</dd>" for c in columns if c.meaning)
    return (f'<details class="legend"><summary>What the columns mean</summary><dl>{items}</dl>'
            "</details>")


def _sizes_note(scored: list[dict[str, Any]]) -> str:
    sizes = labels.sample_sizes(scored)
    return (f'<p class="note">{sizes}. Under each accuracy: its Wilson 95% interval (the spread '
            "that number has from the images alone).</p>") if sizes else ""


def _model_rows(scored: list[dict[str, Any]], columns: list[Column], group: str, data: PageData,
                ids: Ids) -> str:
    records = {f"{r['dataset']}/{r['threat_model']}/{r['model']}": r for r in data.records}
    body = []
    for row in scored:
        key = f"{group}/{row['model']}"
        search = " ".join(str(row.get(k) or "") for k in ("model", "architecture",
                                                          "training")).lower()
        detail_id = ids("details", f"{group}-{row['model']}")
        toggle = (f'<button type="button" class="toggle" aria-expanded="false" '
                  f'aria-controls="{detail_id}">details</button>')
        cells = "".join(_cell(c, row, data.links.get(key), toggle) for c in columns)
        body.append(
            f'<tr class="model" data-model="{escape(row["model"])}" '
            f'data-search="{escape(search)}">{cells}</tr>'
            f'<tr class="detail" id="{detail_id}" hidden><td colspan="{len(columns)}"><div '
            'class="detail-body">'
            f"<div>{_curve_html(data.curves.get(key), data.curve_images.get(key))}"
            f"{proven_html(records.get(key, {}))}</div>"
            f"<div><details><summary>Provenance: settings, versions, hashes, timings</summary>"
            f"{provenance_html(records.get(key, {}))}</details></div></div></td></tr>"
        )
    return "".join(body)


def _spearman_cell(correlation: Correlation | None) -> str:
    if correlation is None or not finite_number(correlation.value):
        return '<td class="num">undefined</td>'
    interval = (f'<span class="ci">{correlation.low:+.2f} to {correlation.high:+.2f}</span>'
                if finite_number(correlation.low) and finite_number(correlation.high) else "")
    return f'<td class="num">{correlation.value:+.2f}{interval}</td>'


def _calibrated_cell(row: Tracking) -> str:
    if row.calibrated is None:
        return '<td class="num"></td>'
    mae = row.calibrated.mae
    # The learned direction only where it changes the error.
    learned = (f'<span class="ci">learned: {row.learned_mae:.2f}</span>'
               if row.learned_mae is not None and abs(row.learned_mae - mae) >= 0.005 else "")
    return f'<td class="num">{mae:.2f}{learned}</td>'


def tracking_html(tracked: list[Tracking], title: str, table_id: str) -> str:
    """One group's "which attack-free score tracks AutoAttack" table, rows as sorted."""
    if not tracked:
        return ""
    uncalibrated = any(t.uncalibrated_mae is not None for t in tracked)
    cost = any(t.cost is not None for t in tracked)
    models = max((len(t.calibrated.errors) for t in tracked if t.calibrated), default=0)
    head = ("<th>score</th><th>Spearman ρ</th><th>calibrated error</th>"
            + ("<th>uncalibrated error</th>" if uncalibrated else "")
            + ("<th>× AutoAttack's cost</th>" if cost else ""))
    lines = "".join(
        f'<tr data-score="{escape(t.score)}"><td>{escape(labels.score_label(t.score))}<span '
        f'class="sub">larger: {"more" if t.higher_is_robust else "less"} robust</span></td>'
        f"{_spearman_cell(t.spearman)}{_calibrated_cell(t)}"
        + (f'<td class="num">{"" if t.uncalibrated_mae is None else f"{t.uncalibrated_mae:.2f}"}'
           "</td>" if uncalibrated else "")
        + (f'<td class="num">{"" if t.cost is None else f"{t.cost.ratio:.2g}"}</td>'
           if cost else "")
        + "</tr>" for t in tracked
    )
    return (
        "<h3>Which attack-free score tracks AutoAttack</h3>"
        f'<p class="note">Every score over the {models} models with AutoAttack accuracy, sorted by '
        "|Spearman ρ| with it (under each, its paired-bootstrap 95% interval). Errors are mean "
        "absolute differences from AutoAttack accuracy in points. Calibrated: a monotone "
        "(isotonic) map from the score to accuracy, fitted on the other models and evaluated on "
        "the held-out one, in the direction the score declares (learned: where letting each fit "
        "take its direction from its own training models changes the error). Uncalibrated: the "
        "predicted accuracy as it is, fitted on nothing. Cost: the median over the models of "
        "the score's seconds per image over AutoAttack's.</p>"
        f'<div class="scroll" role="region" aria-label="{escape(title)}: which score tracks '
        f'AutoAttack" tabindex="0"><table class="plain tracking" id="{table_id}"><thead><tr>'
        f"{head}</tr></thead><tbody>{lines}</tbody></table></div>"
    )


def group_section(group: str, rows: list[dict[str, Any]], data: PageData, ids: Ids) -> str:
    """One dataset/threat model: the filter, the model table with details rows, failures, costs."""
    records = {f"{r['dataset']}/{r['threat_model']}/{r['model']}": r for r in data.records}
    scored = _ranked([r for r in rows if r["status"] == "ok"])
    failed = [r for r in rows if r["status"] != "ok"]
    columns = columns_for(scored)
    table_id, count_id = ids("table", group), ids("count", group)
    title = data.titles.get(group, group)
    parts = [f'<section id="{ids("group", group)}"><h2>{escape(title)}</h2>',
             _sizes_note(scored)]
    if group in data.errors:
        mean, count = data.errors[group]
        parts.append(f"<p>Mean |predicted − AutoAttack| over {count} models: <b>{mean:.2f}</b> "
                     "points.</p>")
    if labels.some_unproven(scored):
        note = labels.PROVEN_NOTE
        parts.append(f'<p class="note proven-note">{escape(note[0].upper() + note[1:])}.</p>')
    extras = any(c.extra for c in columns)
    parts.append(
        '<div class="controls"><label>Filter by name, architecture or training: '
        f'<input type="search" class="filter" data-table="{table_id}" data-count="{count_id}" '
        'placeholder="e.g. resnet, pgd"></label>'
        + (f'<label><input type="checkbox" class="all-columns" data-table="{table_id}"> all '
           "columns</label>" if extras else "")
        + f'<span class="count" id="{count_id}">{len(scored)} models</span></div>'
        f'<div class="scroll" role="region" aria-label="{escape(title)}" tabindex="0">'
        f'<table class="board" id="{table_id}"><thead><tr>'
        f"{''.join(_header(c) for c in columns)}</tr></thead>"
        f"<tbody>{_model_rows(scored, columns, group, data, ids)}</tbody></table></div>"
        f"{_legend(columns)}"
        f"{tracking_html(data.tracked.get(group, []), title, ids('tracking', group))}"
    )
    if failed:
        items = "".join(
            f"<li><b>{name_html(r['model'])}</b>: "
            f"{escape(r.get('error') or r['status'])}<details><summary>provenance"
            f"</summary>{provenance_html(records.get(group + '/' + r['model'], {}))}</details></li>"
            for r in failed
        )
        parts.append(f"<h3>Not scored ({len(failed)})</h3><ul>{items}</ul>")
    costs = data.costs.get(group) or []
    if costs:
        lines = "".join(
            f'<tr><td>{escape(what)}</td><td class="num">{seconds:.3g}</td><td '
            f'class="num">{ratio:.3g}</td>'
            f'<td class="num">{count}</td></tr>' for what, seconds, ratio, count in costs
        )
        parts.append("<h3>Cost per image</h3><p "
                     f"class=\"note\">{escape(data.cost_note)}.</p><div class=\"scroll\"><table "
                     "class=\"plain\"><thead><tr><th>metric</th><th>s / image</th><th>× "
                     f"AutoAttack's</th><th>models</th></tr></thead><tbody>{lines}</tbody></table>"
                     "</div>")
    parts.append("</section>")
    return "".join(parts)


def correlation_section(correlations: dict[str, dict[str, dict[str, Correlation]]],
                        n_resamples: int, titles: dict[str, str]) -> str:
    """Every coefficient with its paired-bootstrap 95% interval, per group and score."""
    parts = ['<section id="correlations"><h2>Correlations with AutoAttack accuracy</h2>',
             ('<p class="note">Per dataset and threat model, over the scored models with '
              'AutoAttack accuracy; '
              f"each coefficient with its paired-bootstrap 95% interval ({n_resamples:,} "
              "resamples). Smaller "
              "λ_max, trace and black-box or reference estimates mean smoother models, so a "
              "negative coefficient "
              "is the expected sign for them; predicted accuracy and CLEVER should correlate "
              "positively.</p>")]
    for group, table in correlations.items():
        n = next((c.n for kinds in table.values() for c in kinds.values()), 0)
        heading = f"<h3>{escape(titles.get(group, group))} ({n} models)</h3>"
        if n < 3:
            parts.append(f"{heading}<p class=\"note\">Rank correlations need at least 3 models "
                         f"with AutoAttack accuracy; {n} so far.</p>")
            continue
        head = "".join(f"<th>{escape(name)}</th>" for name in labels.CORRELATIONS.values())
        lines = "".join(
            f"<tr><td>{escape(labels.score_label(score))}</td>" + "".join(
                f'<td class="num">{escape(str(kinds[k])) if k in kinds else ""}</td>'
                for k in labels.CORRELATIONS
            ) + "</tr>" for score, kinds in table.items()
        )
        parts.append(f"{heading}<div class=\"scroll\"><table class=\"plain\">"
                     f"<thead><tr><th>score</th>{head}</tr></thead><tbody>{lines}</tbody></table>"
                     "</div>")
    parts.append("</section>")
    return "".join(parts)


def figures_section(figures: dict[str, str], ids: Ids) -> str:
    """The scatter plots, inline; hovering a point names its model."""
    items = "".join(f'<figure class="plot" id="{ids("figure", name)}">{svg}<figcaption>'
                    f"{escape(FIGURE_CAPTIONS.get(name, name))}</figcaption></figure>"
                    for name, svg in figures.items())
    return ('<section id="plots"><h2>Plots</h2><p class="note">Hover over a point to see which '
            'model it is.</p>'
            f"{items}</section>")


def skipped_section(skipped: list[Skipped]) -> str:
    """The files left out and why (a statement that none were, when none were)."""
    if not skipped:
        return ('<section id="skipped"><h2>Files skipped</h2>'
                "<p>None: every result file was read and checked.</p></section>")
    items = "".join(f"<li><code>{escape(s.file)}</code>: {escape(s.reason)}</li>" for s in skipped)
    return (f'<section id="skipped"><h2>Files skipped ({len(skipped)})</h2><p>These files failed a '
            'check and are '
            f"not in the tables.</p><ul>{items}</ul></section>")


ABOUT = """<section id="about"><h2>What the numbers are</h2><ul>
<li><b>λ_max</b>: spectral norm of the input Fisher information F(x) of each test image, and <b>tr
F</b> its trace, both summarised by the median over the scored images.</li>
<li><b>predicted</b>: attack-free robust accuracy, the fraction of images classified correctly whose
robust radius at the threat model reaches the budget; first-order from one Jacobian pass, refined
where the result stores refined radii. The |predicted − AutoAttack| column and the correlations use
the refined prediction where present, else the first-order one.</li>
<li><b>AutoAttack</b>: accuracy under standard AutoAttack as reported by RobustBench (on its full
test set), or for the project's zoo as measured here on the same images. An accuracy measured on
n images has a Wilson 95% interval: the range it could have landed in from the choice of images
alone.</li>
<li><b>details</b>: each model's predicted accuracy-vs-ε curve (when its radii are stored) with
AutoAttack's measured points, and the provenance of its numbers: settings, package versions, device,
hashes of the images and of each checkpoint loaded, the per-image file and its SHA-256 (checked when
this page was rendered), timings.</li>
</ul></section>"""


def _header_block(data: PageData, scored: int) -> str:
    stamp = data.stamp
    when = (f"Rendered {escape(stamp.date)} from commit <code>{escape(stamp.commit)}</code>"
            if stamp and stamp.commit else
            f"Rendered {escape(stamp.date)} outside a git checkout (commit unknown)"
            if stamp else "")
    download = (
        '<a class="download" download="leaderboard.csv" href="data:text/csv;charset=utf-8;base64,'
        f'{base64.b64encode(data.csv.encode("utf-8")).decode("ascii")}">Download the table '
        "(CSV)</a>" if data.csv else ""
    )
    stamp_line = " · ".join(p for p in (when, download) if p)
    return (
        "<header><h1>Input-Fisher leaderboard</h1>"
        + (f'<p class="stamp">{stamp_line}</p>' if stamp_line else "")
        + f"<p>{scored} scored results, most robust first (by AutoAttack accuracy) beside their "
        "attack-free scores. Click a column heading to sort, type in a filter box to narrow a "
        "table, tick “all columns” for every score, and open a model's details for its "
        "accuracy-vs-ε curve and the provenance of its numbers.</p></header>"
    )


def page(data: PageData) -> str:
    """The whole page as HTML text."""
    by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in data.rows:
        by_group[f"{row['dataset']}/{row['threat_model']}"].append(row)
    groups = sorted(by_group)
    ids = Ids()
    ids.used.update({"correlations", "plots", "skipped", "about", "summary"})
    sections = [group_section(g, by_group[g], data, ids) for g in groups]
    section_ids = [s.split('"', 2)[1] for s in sections]
    nav = "".join(f'<a href="#{section_id}">{escape(data.titles.get(g, g))}</a>'
                  for g, section_id in zip(groups, section_ids))
    nav += ('<a href="#correlations">correlations</a><a href="#plots">plots</a>'
            f'<a href="#skipped">skipped files ({len(data.skipped)})</a><a href="#about">about</a>')
    scored = sum(r["status"] == "ok" for r in data.rows)
    summary = json.dumps({"models_scored": scored, "files_skipped": len(data.skipped)})
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        "<title>Input-Fisher leaderboard</title>"
        f"<style>{CSS}</style></head><body>"
        f"{_header_block(data, scored)}"
        f"<nav>{nav}</nav><main>{''.join(sections)}"
        f"{correlation_section(data.correlations, data.n_resamples, data.titles)}"
        f"{figures_section(data.figures, ids)}"
        f"{skipped_section(data.skipped)}{ABOUT}</main>"
        f'<script type="application/json" id="summary">{escape(summary, quote=False)}</script>'
        f"<script>{SCRIPT}</script></body></html>\n"
    )
