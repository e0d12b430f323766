"""The leaderboard as one self-contained HTML page (``index.html``).

The page holds everything inline: its CSS, a few lines of JavaScript (sorting and filtering),
the scatter plots as inline SVG (each point's ``<title>`` names its model) and each model's
accuracy-vs-ε curve as a PNG data URI. It loads nothing from elsewhere, so it opens offline
and from an e-mail attachment; links to papers are plain links.

Layout: per dataset and threat model, a table of the scored models (sortable by every column,
filterable by name, architecture and training) in which each row's "details" button opens the
model's curve and the provenance of its numbers; then the models that failed; then the
correlation tables, the plots, the files that were skipped and what the numbers mean.
Every value read from a result file is escaped.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from typing import Any

from leaderboard.model_curves import ModelCurve
from leaderboard.read_results import Skipped, finite_number
from leaderboard.stats import Correlation

#: Keys of a result JSON shown as the provenance of its numbers, in this order.
PROVENANCE_KEYS = ("settings", "method", "route", "device", "seed", "batch_size", "versions",
                   "images",
                   "checkpoints", "checkpoint_load", "per_image", "seconds", "shared_from",
                   "reported")

#: What each correlation column of the page is.
CORRELATION_KINDS = {
    "spearman_vs_autoattack": "Spearman vs AutoAttack",
    "kendall_vs_autoattack": "Kendall vs AutoAttack",
    "pearson_vs_autoattack": "Pearson vs AutoAttack",
    "spearman_vs_clean": "Spearman vs clean",
    "partial_spearman_vs_autoattack_given_clean": "partial Spearman vs AutoAttack | clean",
}

#: Captions of the scatter figures, by name.
FIGURE_CAPTIONS = {
    "fisher_vs_autoattack": "Median λ_max of the input Fisher against AutoAttack accuracy.",
    "predicted_vs_autoattack": ("Predicted (attack-free) robust accuracy against AutoAttack "
                                "accuracy; points on "
                                "the dashed identity line are predicted exactly."),
    "clean_vs_autoattack": "Clean against AutoAttack accuracy, coloured by log10 median λ_max.",
    "scores_vs_autoattack": "Every score against AutoAttack accuracy.",
}


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


@dataclass(frozen=True)
class Column:
    """A column of a model table.

    Attributes:
        header: its heading.
        value: the cell's value from a row.
        numeric: sort numerically (by the raw value), else by text.
        tip: what the column is (the heading's tooltip).
        digits: significant digits of a number; ``None``: percent with one decimal.
    """

    header: str
    value: Callable[[dict[str, Any]], Any]
    numeric: bool = True
    tip: str = ""
    digits: int | None = 3


def _first_finite(row: dict[str, Any], first: str, second: str) -> Any:
    """``row[first]`` when it is a finite number, else ``row.get(second)``."""
    return row[first] if finite_number(row.get(first)) else row.get(second)


def columns_for(rows: list[dict[str, Any]]) -> list[Column]:
    """The columns of one group's table: those with a value for at least one of its models."""
    candidates = [
        Column("rank", lambda r: r.get("_rank"), tip="by AutoAttack accuracy", digits=0),
        Column("model", lambda r: r["model"], numeric=False),
        Column("architecture", lambda r: r.get("architecture"), numeric=False),
        Column("training", lambda r: r.get("training"), numeric=False),
        Column("extra data", lambda r: {True: "yes", False: "no"}.get(r.get("additional_data")),
               numeric=False),
        Column("clean %", lambda r: _first_finite(r, "reported_clean_acc", "clean_acc"),
               digits=None,
               tip="clean accuracy as reported (else measured on the scored images)"),
        Column("AutoAttack %", lambda r: r.get("autoattack_acc"), digits=None,
               tip="reported AutoAttack accuracy"),
        Column("predicted, refined %", lambda r: r.get("predicted_refined"), digits=None,
               tip="fraction of images whose refined robust radius reaches the budget"),
        Column("predicted, first-order %", lambda r: r.get("predicted_first_order"), digits=None,
               tip="fraction of images whose first-order robust radius reaches the budget"),
        Column("|predicted − AutoAttack|", lambda r: r.get("predicted_abs_error"), digits=None,
               tip="of the refined prediction where stored, else the first-order one (points)"),
        Column("median λ_max", lambda r: r.get("spectral_norm_median"),
               tip="median over the images of λ_max(F(x))"),
        Column("median tr F", lambda r: r.get("trace_median"),
               tip="median over the images of tr F(x)"),
        Column("black-box λ_max", lambda r: r.get("blackbox_spectral_norm_median"),
               tip="query-only estimate, median over its images"),
        Column("reference λ_max", lambda r: r.get("reference_spectral_norm_median"),
               tip="first paper's reference white-box estimator, median over its images"),
        Column("CLEVER", lambda r: r.get("clever_median"),
               tip="ART clever_u at this threat model, median"),
        Column("Fisher s/image", lambda r: r.get("fisher_seconds_per_image"),
               tip="wall time per image of the exact Fisher pass"),
        Column("AutoAttack s/image", lambda r: r.get("autoattack_seconds_per_image"),
               tip="wall time per image of standard AutoAttack, from the model-info file"),
    ]
    always = {"rank", "model", "AutoAttack %"}
    return [c for c in candidates if c.header in always
            or any(c.value(r) not in (None, "") for r in rows)]


def _number(value: Any, digits: int | None) -> str:
    if not finite_number(value):
        return ""
    if digits is None:
        return f"{value:.1f}"
    if digits == 0:
        return f"{value:.0f}"
    return f"{value:.{digits}g}"


def _cell(column: Column, row: dict[str, Any], link: str | None) -> str:
    value = column.value(row)
    if column.numeric:
        sort = f' data-v="{float(value)!r}"' if finite_number(value) else ""
        return f'<td class="num"{sort}>{_number(value, column.digits)}</td>'
    text = escape("" if value is None else str(value))
    if column.header == "model" and link:
        text = f'<a href="{escape(link)}" rel="noopener">{text}</a>'
    return f"<td>{text}</td>"


def _flat(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``(dotted key, leaf)`` pairs of a JSON value.

    Keys read like ``images.file_sha256`` or ``checkpoints[0].sha256``.
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


def provenance_html(record: dict[str, Any]) -> str:
    """The provenance of one result, one row per field.

    The fields are the settings, versions, device, hashes and timings.
    """
    shown = {key: record[key] for key in PROVENANCE_KEYS if key in record}
    if not shown:
        return "<p>This result records no provenance (scored by an earlier version).</p>"
    lines = "".join(
        f"<tr><th>{escape(key)}</th><td><code>{escape(_leaf_text(leaf))}</code></td></tr>"
        for key, leaf in _flat(shown)
    )
    return f'<table class="prov"><tbody>{lines}</tbody></table>'


def _budget(eps: float, threat_model: str) -> str:
    """A budget as RobustBench writes it: ``8/255`` for ℓ∞, ``0.5`` for ℓ2."""
    return f"{eps * 255:.3g}/255" if threat_model == "Linf" else f"{eps:.3g}"


def _curve_html(curve: ModelCurve | None, image: str | None) -> str:
    if curve is None or image is None:
        return ('<p class="note">No accuracy-vs-ε curve: this result stores no radii at its '
                "threat model.</p>")
    points = "".join(
        f"<li>ε = {_budget(p.eps, curve.threat_model)}: {p.accuracy:.1f}% (n = "
        f"{p.n_examples if p.n_examples is not None else '?'}, "
        f"{escape(p.source)})</li>" for p in curve.autoattack
    )
    measured = (
        f"<p>AutoAttack measured:</p><ul>{points}</ul>" if points
        else "<p>No AutoAttack point stored.</p>"
    )
    kinds = "first-order and refined radii" if curve.refined is not None else "first-order radii"
    return (f'<figure class="curve"><img alt="accuracy vs eps of {escape(curve.model)}" '
            f'src="{image}">'
            f"<figcaption>Predicted from the stored {kinds}; squares: "
            f"AutoAttack.</figcaption></figure>{measured}")


def _ranked(members: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Scored models by AutoAttack accuracy, best first, each with its ``_rank``."""
    members = sorted(members, key=lambda r: (not finite_number(r["autoattack_acc"]),
                                             -(r["autoattack_acc"]
                                               if finite_number(r["autoattack_acc"]) else 0.0),
                                             r["model"]))
    return [{**r, "_rank": i + 1 if finite_number(r["autoattack_acc"]) else None}
            for i, r in enumerate(members)]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text)


def group_section(group: str, rows: list[dict[str, Any]], data: PageData) -> str:
    """One dataset/threat model: the filter, the model table with details rows, failures, costs."""
    records = {f"{r['dataset']}/{r['threat_model']}/{r['model']}": r for r in data.records}
    scored = _ranked([r for r in rows if r["status"] == "ok"])
    failed = [r for r in rows if r["status"] != "ok"]
    columns = columns_for(scored)
    slug = _slug(group)
    head = "".join(
        f'<th data-sort="{"num" if c.numeric else "text"}" title="{escape(c.tip)}" '
        f'tabindex="0">{escape(c.header)}</th>'
        for c in columns
    ) + "<th>details</th>"
    body = []
    for row in scored:
        key = f"{group}/{row['model']}"
        search = " ".join(str(row.get(k) or "") for k in ("model", "architecture",
                                                          "training")).lower()
        cells = "".join(_cell(c, row, data.links.get(key)) for c in columns)
        detail_id = f"details-{slug}-{_slug(row['model'])}"
        body.append(
            f'<tr class="model" data-model="{escape(row["model"])}" '
            f'data-search="{escape(search)}">{cells}'
            '<td><button type="button" class="toggle" aria-expanded="false" '
            f'aria-controls="{detail_id}">'
            f"details</button></td></tr>"
            f'<tr class="detail" id="{detail_id}" hidden><td colspan="{len(columns) + 1}"><div '
            'class="detail-body">'
            f"<div>{_curve_html(data.curves.get(key), data.curve_images.get(key))}</div>"
            f"<div><h4>Provenance</h4>{provenance_html(records.get(key, {}))}</div></div></td></tr>"
        )
    parts = [f'<section id="group-{slug}"><h2>{escape(group)}</h2>']
    if group in data.errors:
        mean, count = data.errors[group]
        parts.append(f"<p>Mean |predicted − AutoAttack| over {count} models: <b>{mean:.2f}</b> "
                     "points.</p>")
    parts.append(
        f'<p><label>Filter by name, architecture or training: <input type="search" class="filter" '
        f'data-table="table-{slug}" placeholder="e.g. resnet, pgd"></label> '
        f'<span class="count" id="count-{slug}">{len(scored)} models</span></p>'
        f'<div class="scroll"><table class="board" id="table-{slug}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )
    if failed:
        items = "".join(
            f"<li><b>{escape(r['model'])}</b>: "
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
                     f"class=\"note\">{escape(data.cost_note)}.</p><table "
                     "class=\"plain\"><thead><tr><th>metric</th><th>s / image</th><th>× "
                     f"AutoAttack's</th><th>models</th></tr></thead><tbody>{lines}</tbody></table>")
    parts.append("</section>")
    return "".join(parts)


def correlation_section(correlations: dict[str, dict[str, dict[str, Correlation]]],
                        n_resamples: int) -> str:
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
        note = (f"<p class=\"note\">Rank correlations need at least 3 models; {n} so far, so the "
                "coefficients are undefined (NaN).</p>" if n < 3 else "")
        head = "".join(f"<th>{escape(CORRELATION_KINDS.get(k, k))}</th>" for k in CORRELATION_KINDS)
        lines = "".join(
            f"<tr><td>{escape(score)}</td>" + "".join(
                f'<td class="num">{escape(str(kinds[k])) if k in kinds else ""}</td>'
                for k in CORRELATION_KINDS
            ) + "</tr>" for score, kinds in table.items()
        )
        parts.append(f"<h3>{escape(group)} ({n} models)</h3>{note}<div class=\"scroll\"><table "
                     "class=\"plain\">"
                     f"<thead><tr><th>score</th>{head}</tr></thead><tbody>{lines}</tbody></table></div>")
    parts.append("</section>")
    return "".join(parts)


def figures_section(figures: dict[str, str]) -> str:
    """The scatter plots, inline; hovering a point names its model."""
    items = "".join('<figure class="plot" '
                    f'id="figure-{name}">{svg}<figcaption>{escape(FIGURE_CAPTIONS.get(name, name))}'
                    "</figcaption></figure>" for name, svg in figures.items())
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
<li><b>AutoAttack</b>: accuracy under standard AutoAttack as reported by RobustBench, or for the
project's zoo as measured here on the same images.</li>
<li><b>details</b>: each model's predicted accuracy-vs-ε curve (when its radii are stored) with
AutoAttack's measured points, and the provenance of its numbers: settings, package versions, device,
hashes of the images and of each checkpoint loaded, the per-image file and its SHA-256 (checked when
this page was rendered), timings.</li>
</ul></section>"""

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0
auto;max-width:1400px; padding:0 1rem 3rem;color:#1b1f24;line-height:1.4}
h1{margin-top:1.2rem}nav a{margin-right:1rem}
table{border-collapse:collapse;font-size:.86rem}th,td{padding:.25rem .5rem;border-bottom:1px solid
#dde} th{background:#f2f4f8;position:sticky;top:0;text-align:left;white-space:nowrap}
th[data-sort]{cursor:pointer}th[data-sort]::after{content:" \\2195";color:#99a}
th[aria-sort=ascending]::after{content:"
\\25B2";color:#333}th[aria-sort=descending]::after{content:" \\25BC";color:#333}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.model:nth-child(4n+1){background:#fafbfd}tr.detail td{background:#f7f8fb}
.scroll{overflow-x:auto}.note{color:#555;font-size:.9rem}
.detail-body{display:flex;flex-wrap:wrap;gap:2rem;align-items:flex-start;position:sticky;left:.5rem;
max-width:min(1300px,calc(100vw - 4rem))} table.prov{font-size:.75rem}table.prov
th{position:static;background:none;font-weight:600} table.prov
code{word-break:break-all}td{white-space:nowrap}tr.detail td,table.prov td{white-space:normal}
figure.plot{display:inline-block;margin:1rem;vertical-align:top}figure.plot
svg{max-width:100%;height:auto} figure.curve img{max-width:100%} g.point:hover path,g.point:hover
use{stroke:#000;stroke-width:2} button.toggle{font-size:.8rem}input.filter{min-width:16rem}
"""

SCRIPT = """
(function () {
  "use strict";
  function value(row, col, numeric) {
    var cell = row.cells[col];
    if (numeric) {
      var v = cell.getAttribute("data-v");
      return v === null ? null : parseFloat(v);
    }
    return cell.textContent.trim().toLowerCase();
  }
  function sortTable(table, col, th) {
    var numeric = th.getAttribute("data-sort") === "num";
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    var rows = Array.prototype.slice.call(table.tBodies[0].querySelectorAll("tr.model"));
    var pairs = rows.map(function (row) { return [row, row.nextElementSibling]; });
    pairs.sort(function (a, b) {
      var x = value(a[0], col, numeric), y = value(b[0], col, numeric);
      if (x === null || x === "") { return (y === null || y === "") ? 0 : 1; }
      if (y === null || y === "") { return -1; }
      var order = x < y ? -1 : (x > y ? 1 : 0);
      return ascending ? order : -order;
    });
    var body = table.tBodies[0];
    pairs.forEach(function (pair) { body.appendChild(pair[0]); body.appendChild(pair[1]); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell) {
    cell.removeAttribute("aria-sort"); }); th.setAttribute("aria-sort", ascending ? "ascending" :
    "descending");
  }
  function filterTable(input) {
    var table = document.getElementById(input.getAttribute("data-table"));
    var query = input.value.trim().toLowerCase();
    var shown = 0;
    Array.prototype.forEach.call(table.tBodies[0].querySelectorAll("tr.model"), function (row) {
      var match = row.getAttribute("data-search").indexOf(query) !== -1;
      row.hidden = !match;
      var open = row.querySelector("button.toggle").getAttribute("aria-expanded") === "true";
      row.nextElementSibling.hidden = !(match && open);
      if (match) { shown += 1; }
    });
    var count = document.getElementById(table.id.replace("table-", "count-"));
    if (count) { count.textContent = shown + " models"; }
  }
  document.querySelectorAll("table.board").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      if (!th.hasAttribute("data-sort")) { return; }
      th.addEventListener("click", function () { sortTable(table, col, th); });
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sortTable(table, col,
      th); } });
    });
  });
  document.querySelectorAll("input.filter").forEach(function (input) {
    input.addEventListener("input", function () { filterTable(input); });
  });
  document.querySelectorAll("button.toggle").forEach(function (button) {
    button.addEventListener("click", function () {
      var detail = document.getElementById(button.getAttribute("aria-controls"));
      var open = button.getAttribute("aria-expanded") !== "true";
      button.setAttribute("aria-expanded", open ? "true" : "false");
      detail.hidden = !open;
    });
  });
}());
"""


def page(data: PageData) -> str:
    """The whole page as HTML text."""
    by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in data.rows:
        by_group[f"{row['dataset']}/{row['threat_model']}"].append(row)
    groups = sorted(by_group)
    nav = "".join(f'<a href="#group-{_slug(g)}">{escape(g)}</a>' for g in groups)
    nav += ('<a href="#correlations">correlations</a><a href="#plots">plots</a>'
            f'<a href="#skipped">skipped files ({len(data.skipped)})</a><a href="#about">about</a>')
    scored = sum(r["status"] == "ok" for r in data.rows)
    sections = "".join(group_section(g, by_group[g], data) for g in groups)
    summary = json.dumps({"models_scored": scored, "files_skipped": len(data.skipped)})
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        "<title>Input-Fisher leaderboard</title>"
        f"<style>{CSS}</style></head><body>"
        "<h1>Input-Fisher leaderboard</h1>"
        f"<p>{scored} scored results, ranked by AutoAttack accuracy beside their attack-free "
        "scores. Click a column heading to sort, type in a filter box to narrow a table, and "
        "open a model's details for its accuracy-vs-ε curve and the provenance of its numbers."
        "</p>"
        f"<nav>{nav}</nav>{sections}"
        f"{correlation_section(data.correlations, data.n_resamples)}"
        f"{figures_section(data.figures)}"
        f"{skipped_section(data.skipped)}{ABOUT}"
        f'<script type="application/json" id="summary">{escape(summary, quote=False)}</script>'
        f"<script>{SCRIPT}</script></body></html>\n"
    )
