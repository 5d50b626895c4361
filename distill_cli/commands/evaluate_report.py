"""What ``distill evaluate`` draws: the ``--plot`` PNG, and ``--report report.html``, one self-contained page
(no network, no external script, style or font; the figures embedded as PNG) that a team can open, attach to
a CI run or paste into a review: the side-by-side table, accuracy against latency and size, the out-of-scope
threshold curve and the score's distribution, per-intent results with what each intent was confused with, a
confusion heat map of the most-confused intents, the data checks of the dataset, and the machine."""

from __future__ import annotations

import base64
import html
import io
import time
from pathlib import Path

import numpy as np

from distill_cli.figures import pyplot, save_figure
from distill_cli.files import atomic_file
from distill_cli.metrics import COST, QUALITY, separation_rows
from distill_cli.records import EvalReport, ModelResult, RuleResult

WORST_INTENTS = 30  # rows per model in the report's per-intent table (all are in the JSON)


# ---------------------------------------------------------------------------------------------- figures


def tradeoff(ax, report: EvalReport) -> None:
    """Accuracy against latency, marker area proportional to size, one labelled point per model."""
    for m in report.models:
        x, y = m.latency_ms_median, m.accuracy * 100
        ax.scatter(x, y, s=max(m.size_mb or 1, 1) * 4, alpha=0.5, label=m.model)
        ax.annotate(m.model, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=9)
    ax.set_xlabel("Median latency of one query (ms)")
    ax.set_ylabel("Accuracy (%)")
    ax.set_title(f"{report.dataset} · {report.split}")
    ax.legend(loc="lower right", markerscale=0.3)
    ax.margins(0.25)


def oos_curves(ax, curves: list[tuple[str, RuleResult]]) -> None:
    """In-scope accuracy and out-of-scope recall against the threshold, on validation, and the choice."""
    for i, (name, rule) in enumerate(curves):
        color = f"C{i}"
        thresholds, in_scope, recall = zip(*rule.validation_curve)
        ax.plot(thresholds, [v * 100 for v in in_scope], color=color, label=f"{name}: in-scope accuracy")
        ax.plot(thresholds, [v * 100 for v in recall], color=color, linestyle="--", label=f"{name}: OOS recall")
        ax.axvline(rule.threshold, color=color, linestyle=":", linewidth=1)
    ax.set_xlabel("Threshold on the rule's confidence (top probability, or −score)")
    ax.set_ylabel("%")
    ax.set_title("Out-of-scope rule on validation (dotted: the chosen threshold)")
    ax.legend(loc="lower left", fontsize=8)


def rule_curves(report: EvalReport) -> list[tuple[str, RuleResult]]:
    return [(m.model, m.oos_rule) for m in report.models if m.oos_rule is not None and m.oos_rule.validation_curve]


def plot(report: EvalReport, path: Path) -> None:
    """``--plot``: accuracy against latency; where models have a rule, its curves on validation; with
    out-of-scope test queries, how the rule's confidence spreads over them and over in-scope ones."""
    curves = rule_curves(report)
    spread = [m for m in report.models if m.score_histogram is not None]
    panels = 1 + bool(curves) + bool(spread)
    fig, axes = pyplot().subplots(1, panels, figsize=(6.5 * panels, 5), squeeze=False)
    tradeoff(axes[0][0], report)
    if curves:
        oos_curves(axes[0][1], curves)
    if spread:
        score_spread(axes[0][-1], spread)
    save_figure(fig, path)


CONFIDENCE = {"max_softmax": "Top probability", None: "Top probability"}


def score_spread(ax, models: list[ModelResult]) -> None:
    """Each model's share of in-scope (solid) and out-of-scope (dashed) test queries by the rule's confidence."""
    for i, m in enumerate(models):
        h = m.score_histogram
        for key, style in (("in_scope", "-"), ("oos", "--")):
            counts = np.asarray(getattr(h, key), dtype=float)
            share = counts / counts.sum() if counts.sum() else counts
            ax.step(h.edges[1:], share, where="pre", color=f"C{i}", linestyle=style,
                    label=f"{m.model}: {'in scope' if key == 'in_scope' else 'out of scope'}")  # fmt: skip
    ax.set_xlabel("The rule's confidence (test): top probability, or −score")
    ax.set_ylabel("share of queries")
    ax.set_title("How the score spreads: in scope (solid), out of scope (dashed)")
    ax.legend(fontsize=8)


def score_distributions(report: EvalReport):
    """Per model, how its rule's confidence spreads over in-scope and out-of-scope test queries."""
    models = [m for m in report.models if m.score_histogram is not None]
    if not models:
        return None
    fig, axes = pyplot().subplots(1, len(models), figsize=(5 * len(models), 3.6), squeeze=False)
    for ax, m in zip(axes[0], models):
        h = m.score_histogram
        centres = [(a + b) / 2 for a, b in zip(h.edges, h.edges[1:])]
        width = h.edges[1] - h.edges[0]
        ax.bar(centres, h.in_scope, width=width, alpha=0.6, label="in scope")
        ax.bar(centres, h.oos, width=width, alpha=0.6, label="out of scope")
        if m.oos_rule is not None:
            ax.axvline(m.oos_rule.threshold, color="k", linestyle=":", linewidth=1, label="threshold")
        ax.set_yscale("log")
        ax.set_xlabel(CONFIDENCE.get(h.score, f"−{h.score} score"))
        ax.set_title(m.model, fontsize=10)
        ax.legend(fontsize=8)
    return fig


def confusion_heat_map(m: ModelResult):
    """The most-confused intents of one model: rows the true intent, columns its answer."""
    names, matrix = (m.confusion.intents, m.confusion.matrix) if m.confusion is not None else ([], [])
    if not names:
        return None
    size = max(4.0, 0.45 * len(names) + 2)
    fig, ax = pyplot().subplots(figsize=(size + 1.5, size))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            if count:
                ax.text(j, i, str(count), ha="center", va="center", fontsize=7)
    ax.set_xlabel("answered")
    ax.set_ylabel("true intent")
    ax.set_title(f"{m.model}: the most-confused intents", fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.7)
    return fig


def embedded(fig, alt: str) -> str:
    """A figure as an ``<img>`` with its PNG inside the page."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    pyplot().close(fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


# ------------------------------------------------------------------------------------------------ page

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:right}
th{background:#f6f6f6;cursor:pointer}td:first-child,th:first-child{text-align:left}
td.text,th.text{text-align:left}figure{margin:1em 0}img{max-width:100%}.muted{color:#777}
"""
# Click a column header to sort that table by it (numbers as numbers).
SORT = """
document.querySelectorAll("table.sortable th").forEach(function (th, col) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var up = th.dataset.up !== "1";
    th.dataset.up = up ? "1" : "0";
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.v || a.cells[col].textContent;
      var y = b.cells[col].dataset.v || b.cells[col].textContent;
      var d = (isNaN(x) || isNaN(y)) ? x.localeCompare(y) : x - y;
      return up ? d : -d;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""


def cell(value, fmt: str = "{:.4f}") -> str:
    if value is None:
        return "<td>—</td>"
    shown = fmt.format(value) if isinstance(value, (int, float)) else str(value)
    return f'<td data-v="{value}">{html.escape(shown)}</td>'


def comparison_table(report: EvalReport) -> str:
    models = report.models
    head = "".join(f"<th>{html.escape(m.model)}</th>" for m in models)
    rows = []
    for metric in QUALITY:
        rows.append(f"<tr><td>{metric.long}</td>{''.join(cell(m.metric(metric.key)) for m in models)}</tr>")
    for metric in QUALITY:
        values = [m.rule_metric(metric.key) for m in models]
        if any(v is not None for v in values):
            rows.append(f"<tr><td>{metric.long} with OOS rule</td>{''.join(cell(v) for v in values)}</tr>")
    for score, metric in separation_rows(models):
        values = [m.separation_metric(score, metric.key) for m in models]
        rows.append(f"<tr><td>{metric.long} ({score.replace('_', ' ')})</td>{''.join(cell(v) for v in values)}</tr>")
    for metric in COST:
        rows.append(f"<tr><td>{metric.long}</td>{''.join(cell(m.metric(metric.key), metric.fmt) for m in models)}</tr>")
    if len(models) > 1:
        rows.append(f"<tr><td>agreement with {html.escape(models[0].model)}</td><td>—</td>"
                    + "".join(cell(m.agreement) for m in models[1:]) + "</tr>")  # fmt: skip
    return f"<table><thead><tr><th>metric</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def intent_table(m: ModelResult) -> str:
    rows = []
    for r in m.per_intent[:WORST_INTENTS]:
        confused = ", ".join(f"{c.intent} ({c.count})" for c in r.confused_with)
        rows.append(
            f'<tr><td class="text">{html.escape(r.intent)}</td>{cell(r.precision)}{cell(r.recall)}'
            f'{cell(r.f1)}{cell(r.support, "{:,}")}<td class="text">{html.escape(confused)}</td></tr>'
        )
    head = "".join(f"<th>{c}</th>" for c in ("intent", "precision", "recall", "F1", "support"))
    head += '<th class="text">confused with</th>'
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def checks_section(checks: list[dict]) -> str:
    if not checks:
        return '<p class="muted">prepare found nothing wrong with this dataset.</p>'
    return "<ul>" + "".join(f"<li>{html.escape(c['message'])}</li>" for c in checks) + "</ul>"


def write_report(report: EvalReport, path: Path, environment: dict) -> None:
    """The HTML page, written atomically."""
    figures = [embedded(_tradeoff_figure(report), "accuracy against latency and size")]
    curves = rule_curves(report)
    if curves:
        fig, ax = pyplot().subplots(figsize=(8, 4.5))
        oos_curves(ax, curves)
        figures.append(embedded(fig, "out-of-scope threshold curve on validation"))
    distribution = score_distributions(report)
    if distribution is not None:
        figures.append(embedded(distribution, "distribution of the rule's confidence, in scope and out of scope"))
    per_model = []
    for m in report.models:
        heat = confusion_heat_map(m)
        per_model.append(
            f"<h3>{html.escape(m.model)}</h3><p class='muted'>The {WORST_INTENTS} intents with the lowest F1, "
            "with the out-of-scope rule where the model has one; click a header to sort.</p>"
            + intent_table(m) + (embedded(heat, f"confusion heat map of {m.model}") if heat else "")
        )  # fmt: skip
    title = f"distill evaluate · {report.dataset} · {report.split} ({report.examples:,} queries)"
    env = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in environment.items())
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{STYLE}</style></head>
<body><h1>{html.escape(title)}</h1>
<p class="muted">Written {time.strftime("%Y-%m-%d %H:%M")}; latency of one query with {report.threads} threads,
timed round-robin over {report.latency_runs} queries.</p>
<h2>Models side by side</h2>{comparison_table(report)}
<h2>Figures</h2>{"".join(figures)}
<h2>Per intent</h2>{"".join(per_model)}
<h2>Data checks</h2>{checks_section(report.data_checks)}
<h2>Machine</h2><table><tbody>{env}</tbody></table>
<script>{SORT}</script></body></html>
"""
    with atomic_file(path) as tmp:
        tmp.write_text(page, encoding="utf-8")


def _tradeoff_figure(report: EvalReport):
    fig, ax = pyplot().subplots(figsize=(7, 5))
    tradeoff(ax, report)
    return fig
