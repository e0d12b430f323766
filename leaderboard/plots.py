"""The leaderboard's figures: scatter plots whose points name their model, and accuracy-vs-ε curves.

Each figure is drawn once with matplotlib and written two ways: a PNG beside the tables, and
an SVG for the HTML page in which every point carries a ``<title>`` (the browser's tooltip)
naming its model and its values. Points are drawn one artist each, with an SVG id that
:func:`svg` finds to attach the title.

Names come from result files, so no text is read as matplotlib math (``$...$``): every figure is
drawn inside :func:`style`. Several SVGs share one page, so :func:`svg` gives every id a
matplotlib writes (``figure_1``, ``patch_1``, clip paths) the figure's name as prefix, or drops
it where nothing refers to it.
"""

from __future__ import annotations

import base64
import io
import math
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any

import numpy as np

from leaderboard.baselines import BASELINES
from leaderboard.labels import score_label
from leaderboard.model_curves import ModelCurve
from leaderboard.read_results import finite_number

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure as MplFigure

#: Columns of :func:`leaderboard.render.flatten` plotted against AutoAttack accuracy, beside the
#: Fisher scores, in the all-scores figure (those present).
BASELINE_COLUMNS = tuple(b.column for b in BASELINES)
FISHER_COLUMNS = (
    "spectral_norm_median", "spectral_norm_mean_log10", "spectral_norm_mean", "trace_median",
)


@dataclass
class Figure:
    """A matplotlib figure with the tooltip of each of its points.

    Attributes:
        name: file stem of its PNG (``fisher_vs_autoattack``) and prefix of its SVG ids.
        figure: the matplotlib figure.
        titles: SVG id of a point -> its tooltip.
        dpi: resolution of the PNG.
    """

    name: str
    figure: MplFigure
    titles: dict[str, str] = field(default_factory=dict)
    dpi: int = 130

    def points(self, ax: Axes, xs: Sequence[float], ys: Sequence[float], tips: Sequence[str],
               label: str | None = None, **style: Any) -> None:
        """Draw one marker per point, each with its tooltip.

        ``label`` names the series once in the legend.
        """
        style = {"marker": "o", "linestyle": "none", "alpha": 0.85, **style}
        for i, (x, y, tip) in enumerate(zip(xs, ys, tips)):
            gid = f"{self.name}-{len(self.titles)}"
            ax.plot([x], [y], gid=gid, label=label if i == 0 and label else "_nolegend_", **style)
            self.titles[gid] = tip


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@contextmanager
def style() -> Iterator[None]:
    r"""The leaderboard's matplotlib settings: the Agg backend, and ``$`` is a dollar sign.

    A model named ``bad$\foo$`` would otherwise be parsed as math text and fail to draw.
    """
    import matplotlib

    _pyplot()
    with matplotlib.rc_context({"text.parse_math": False}):
        yield


def png(figure: Figure, dpi: int | None = None) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.figure.savefig(buffer, format="png", dpi=dpi or figure.dpi, metadata={"Software": None})
    return buffer.getvalue()


def png_data_uri(figure: Figure, dpi: int | None = None) -> str:
    """The figure as a ``data:image/png;base64,...`` URI.

    It goes into an ``<img>`` of a self-contained page.
    """
    return "data:image/png;base64," + base64.b64encode(png(figure, dpi)).decode("ascii")


def svg(figure: Figure) -> str:
    """The figure as an ``<svg>`` element to inline in HTML.

    Each point carries its ``<title>`` tooltip. Text stays text (no font outlines), and ids are
    salted with the figure's name so that several figures can share one page.
    """
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": figure.name}):
        figure.figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    for gid, tip in figure.titles.items():
        text = text.replace(f'<g id="{gid}">', f'<g id="{gid}" '
                            f'class="point"><title>{escape(tip)}</title>', 1)
    return _own_ids(text, figure.name, set(figure.titles))


_REFERENCE = re.compile(r'(url\(#|href="#)([^)"]+)')


def _own_ids(text: str, prefix: str, keep: set[str]) -> str:
    """Ids of ``text`` unique on a page: referenced ones prefixed, the points' kept, others dropped.

    Matplotlib numbers its ids per figure (``figure_1``, ``axes_1``), so two inline figures would
    share them; a reference (``url(#...)``, ``href="#..."``) follows its id's new name.
    """
    referenced = {m.group(2) for m in _REFERENCE.finditer(text)}

    def renamed(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in keep:
            return match.group(0)
        return f' id="{prefix}-{name}"' if name in referenced else ""

    text = re.sub(r' id="([^"]*)"', renamed, text)
    return _REFERENCE.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", text)


def close(figures: Sequence[Figure]) -> None:
    """Release the figures' memory."""
    plt = _pyplot()
    for figure in figures:
        plt.close(figure.figure)


def _group(row: dict[str, Any]) -> str:
    return f"{row['dataset']}/{row['threat_model']}"


def _tip(row: dict[str, Any], *values: tuple[str, Any]) -> str:
    shown = ", ".join(f"{name} {value:.3g}" if isinstance(value, float) else f"{name} {value}"
                      for name, value in values if value is not None)
    return f"{row['model']} ({row.get('architecture') or '?'}): {shown}"


def _log_axis(ax: Axes, axis: str = "x") -> None:
    r"""A log axis whose ticks read ``0.1``, ``1``, ``10``.

    matplotlib's log ticks are math text (``$\mathdefault{10^{1}}$``), which :func:`style` turns
    off so that a ``$`` in a model's name is a dollar sign: plain numbers instead.
    """
    from matplotlib.ticker import FuncFormatter, NullFormatter

    getattr(ax, f"set_{axis}scale")("log")
    scale = getattr(ax, f"{axis}axis")
    scale.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    scale.set_minor_formatter(NullFormatter())


def _log_axis_if_spread(ax: Axes, values: Sequence[float], axis: str = "x") -> None:
    """A log axis when positive values spread over a decade or more.

    Under a decade a log axis has no labelled tick.
    """
    if values and min(values) > 0 and max(values) / min(values) >= 10:
        _log_axis(ax, axis)


def scatter_figures(rows: list[dict[str, Any]], correlations: dict[str, Any],
                    score: str = "spectral_norm_median",
                    titles: dict[str, str] | None = None) -> list[Figure]:
    """Every scatter figure of the leaderboard, over the scored models with AutoAttack accuracy.

    Args:
        rows: rows of :func:`leaderboard.render.flatten`.
        correlations: :func:`leaderboard.render.group_correlations` of the rows.
        score: the Fisher score of the first figure.
        titles: ``dataset/threat_model -> heading`` (with the budget); default the group's key.

    Returns:
        ``fisher_vs_autoattack`` (``score``, log scale, Spearman's ρ in the legend),
        ``predicted_vs_autoattack`` (predicted robust accuracy, refined where stored and
        first-order, against AutoAttack's, with the identity line), ``clean_vs_autoattack``
        (one panel per dataset/threat model, coloured by ``score``) and, when baselines are
        present, ``scores_vs_autoattack``.
    """
    plt = _pyplot()
    titles = titles or {}
    usable = [r for r in rows if r["status"] == "ok" and finite_number(r["autoattack_acc"])]
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in usable:
        groups[_group(row)].append(row)
    figures = []

    fisher = Figure("fisher_vs_autoattack", plt.figure(figsize=(7, 5)))
    ax = fisher.figure.subplots()
    for k, (group, members) in enumerate(sorted(groups.items())):
        members = [r for r in members if finite_number(r[score]) and r[score] > 0]
        rho = correlations.get(group, {}).get(score, {}).get("spearman_vs_autoattack")
        name = titles.get(group, group)
        label = f"{name} (n={len(members)}, Spearman ρ = {rho})" if rho else name
        fisher.points(ax, [r[score] for r in members], [r["autoattack_acc"] for r in members],
                      [_tip(r, ("AutoAttack %", r["autoattack_acc"]),
                            (score_label(score), r[score])) for r in members],
                      label=label, color=f"C{k}")
    _log_axis(ax)
    ax.set_xlabel(f"{score_label(score)} of the input Fisher (log scale)")
    ax.set_ylabel("AutoAttack accuracy (%)")
    ax.set_title("Input-Fisher spectral norm vs AutoAttack accuracy")
    if groups:
        ax.legend(fontsize=8)
    fisher.figure.tight_layout()
    figures.append(fisher)

    figures.append(predicted_figure(groups, titles))
    figures.append(clean_figure(groups, score, titles))

    baselines = [c for c in BASELINE_COLUMNS if any(finite_number(r.get(c)) for r in usable)]
    if baselines:
        figures.append(_all_scores_figure(groups, [*FISHER_COLUMNS, "predicted_robust_acc",
                                                   *baselines], titles))
    return figures


def clean_figure(groups: dict[str, list[dict[str, Any]]], score: str,
                 titles: dict[str, str]) -> Figure:
    """Clean against AutoAttack accuracy, one panel per dataset/threat model.

    AutoAttack accuracies at ℓ∞ and ℓ2 budgets are not comparable, so they never share axes. The
    colour is log10 of ``score``, on one scale for all panels.
    """
    plt = _pyplot()
    names = sorted(groups) or ["(no model with AutoAttack accuracy)"]
    columns = min(3, len(names))
    lines = -(-len(names) // columns)
    figure = Figure("clean_vs_autoattack",
                    plt.figure(figsize=(4.6 * columns + 1.2, 4.2 * lines)))
    axes = figure.figure.subplots(lines, columns, squeeze=False)
    coloured = {g: [r for r in groups.get(g, []) if finite_number(r[score]) and r[score] > 0]
                for g in names}
    values = [math.log10(r[score]) for members in coloured.values() for r in members]
    norm = plt.Normalize(min(values, default=0.0), max(values, default=1.0))
    cmap = plt.get_cmap("viridis")
    for ax, group in zip(axes.flat, names):
        for row in coloured[group]:
            acc = (row["reported_clean_acc"] if finite_number(row["reported_clean_acc"])
                   else row["clean_acc"])
            if not finite_number(acc):
                continue
            figure.points(ax, [acc], [row["autoattack_acc"]],
                          [_tip(row, ("clean %", acc), ("AutoAttack %", row["autoattack_acc"]),
                                (score_label(score), row[score]))],
                          color=cmap(norm(math.log10(row[score]))), alpha=1.0)
        ax.set_title(titles.get(group, group), fontsize=10)
        ax.set_xlabel("clean accuracy (%)")
        ax.set_ylabel("AutoAttack accuracy (%)")
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    figure.figure.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=list(axes.flat),
                           label=f"log10 {score_label(score)}")
    figure.figure.suptitle("Clean vs AutoAttack accuracy per threat model, coloured by the "
                           "input-Fisher norm")
    return figure


def predicted_figure(groups: dict[str, list[dict[str, Any]]],
                     titles: dict[str, str] | None = None) -> Figure:
    """Predicted against AutoAttack accuracy per group.

    The identity line is drawn to read the error against. The refined prediction is drawn filled
    where stored, the first-order one hollow.
    """
    plt = _pyplot()
    figure = Figure("predicted_vs_autoattack", plt.figure(figsize=(6.4, 6)))
    ax = figure.figure.subplots()
    top = 0.0
    for k, (group, members) in enumerate(sorted(groups.items())):
        refined = any(finite_number(r.get("predicted_refined")) for r in members)
        for column, kind, fill in (("predicted_refined", "refined", f"C{k}"),
                                   ("predicted_first_order", "first-order",
                                    "none" if refined else f"C{k}")):
            shown = [r for r in members if finite_number(r.get(column))]
            if not shown:
                continue
            errors = [abs(r[column] - r["autoattack_acc"]) for r in shown]
            figure.points(
                ax, [r["autoattack_acc"] for r in shown], [r[column] for r in shown],
                [_tip(r, ("AutoAttack %", r["autoattack_acc"]),
                      (f"predicted ({kind}) %", r[column]),
                      ("|Δ|", abs(r[column] - r["autoattack_acc"]))) for r in shown],
                label=f"{(titles or {}).get(group, group)}, {kind} (mean |Δ| "
                f"{np.mean(errors):.2f} points, n={len(shown)})",
                color=f"C{k}", markerfacecolor=fill,
            )
            top = max(top, *[r[column] for r in shown], *[r["autoattack_acc"] for r in shown])
    top = 5 * math.ceil(top / 5 + 0.2) if top > 0 else 100.0
    ax.plot([0, top], [0, top], color="0.5", linestyle="--", linewidth=1,
            label="identity: predicted = AutoAttack")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("AutoAttack accuracy (%)")
    ax.set_ylabel("predicted robust accuracy (%), attack-free")
    ax.set_title("Predicted vs AutoAttack robust accuracy")
    ax.legend(fontsize=7, loc="upper left")
    figure.figure.tight_layout()
    return figure


def _all_scores_figure(groups: dict[str, list[dict[str, Any]]], scores: list[str],
                       titles: dict[str, str]) -> Figure:
    plt = _pyplot()
    columns = 3
    lines = -(-len(scores) // columns)
    figure = Figure("scores_vs_autoattack", plt.figure(figsize=(12, 3.3 * lines)), dpi=110)
    axes = figure.figure.subplots(lines, columns, squeeze=False)
    for ax, column in zip(axes.flat, scores):
        for k, (group, members) in enumerate(sorted(groups.items())):
            shown = [r for r in members if finite_number(r.get(column))]
            figure.points(ax, [r[column] for r in shown], [r["autoattack_acc"] for r in shown],
                          [_tip(r, ("AutoAttack %", r["autoattack_acc"]),
                                (score_label(column), r[column])) for r in shown],
                          label=titles.get(group, group), color=f"C{k}", markersize=5)
        if column != "predicted_robust_acc" and "log10" not in column:
            _log_axis_if_spread(ax, [r[column] for m in groups.values() for r in m
                                     if finite_number(r.get(column))])
        ax.set_xlabel(score_label(column))
        ax.set_ylabel("AutoAttack accuracy (%)")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(scores):]:
        ax.set_visible(False)
    figure.figure.suptitle("Every score against AutoAttack accuracy, per threat model")
    figure.figure.tight_layout()
    return figure


def draw_curve(ax: Axes, curve: ModelCurve, legend: bool = True, fontsize: float = 7) -> None:
    """One model's predicted accuracy-vs-ε curve(s) and AutoAttack's measured points on one axis."""
    scale, unit = (255.0, " (×1/255)") if curve.threat_model == "Linf" else (1.0, "")
    eps = curve.eps * scale
    ax.plot(eps, curve.first_order, color="C0", label="predicted, first-order")
    if curve.refined is not None:
        ax.plot(eps, curve.refined, color="C1", label="predicted, refined")
    if curve.main_eps is not None:
        ax.axvline(curve.main_eps * scale, color="0.7", linewidth=0.8, linestyle=":")
    if curve.autoattack:
        ax.plot([p.eps * scale for p in curve.autoattack], [p.accuracy for p in curve.autoattack],
                "ks",
                markersize=5, label="AutoAttack, measured")
    ax.set_ylim(0, 100)
    ax.set_xlim(0, eps[-1] if eps[-1] > 0 else 1)
    threat = {"Linf": "ℓ∞", "L2": "ℓ2"}.get(curve.threat_model, curve.threat_model)
    ax.set_xlabel(f"ε, {threat}{unit}")
    ax.set_ylabel("robust accuracy (%)")
    if legend:
        ax.legend(fontsize=fontsize)


#: Size of a model's curve in its details: 640 × 400 px at 100 dpi, read at 11–13 pt on a laptop
#: and still about 8 px high when a phone shrinks it to its width.
CURVE_INCHES, CURVE_DPI, CURVE_FONT = (6.4, 4.0), 100, 11


def curve_figure(curve: ModelCurve) -> Figure:
    """One model's curve, for its details on the page."""
    plt = _pyplot()
    figure = Figure(f"curve-{curve.threat_model}-{curve.model}",
                    plt.figure(figsize=CURVE_INCHES), dpi=CURVE_DPI)
    ax = figure.figure.subplots()
    draw_curve(ax, curve, fontsize=CURVE_FONT)
    ax.set_title(f"{curve.model}: accuracy vs ε", fontsize=CURVE_FONT + 2)
    ax.xaxis.label.set_fontsize(CURVE_FONT + 1)
    ax.yaxis.label.set_fontsize(CURVE_FONT + 1)
    ax.tick_params(labelsize=CURVE_FONT)
    figure.figure.tight_layout()
    return figure


def curves_grid_figure(curves: list[ModelCurve], title: str) -> Figure:
    """Every model's curve of one dataset/threat model (``title``), one small panel each."""
    plt = _pyplot()
    columns = min(6, len(curves))
    lines = -(-len(curves) // columns)
    name = "accuracy_vs_eps"
    figure = Figure(name, plt.figure(figsize=(2.6 * columns, 2.3 * lines + 0.4)), dpi=90)
    axes = figure.figure.subplots(lines, columns, squeeze=False, sharey=True)
    for ax, curve in zip(axes.flat, curves):
        draw_curve(ax, curve, legend=False)
        ax.set_title(curve.model, fontsize=8)
        ax.xaxis.label.set_fontsize(7)
        ax.yaxis.label.set_fontsize(7)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(curves):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    figure.figure.legend(handles, labels, loc="lower right", fontsize=8)
    figure.figure.suptitle(f"{title}: predicted accuracy vs ε per model, with AutoAttack's "
                           "measured points")
    figure.figure.tight_layout()
    return figure
