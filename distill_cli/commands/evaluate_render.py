"""What ``evaluate`` prints: the side-by-side table of its report, the intents that lost the most against the
first model, and each model's intents of lowest F1 (on stderr, for people; ``--json`` holds it all)."""

from __future__ import annotations

from distill_cli.metrics import COST, QUALITY, QUALITY_KEYS, separation_rows
from distill_cli.records import EvalReport, ModelResult
from distill_cli.ui import console


def relative(key: str, value, base) -> str:
    """A metric's change against the first model: points for accuracies, a ratio for the rest."""
    if value is None or base is None:
        return ""
    if key in QUALITY_KEYS:
        delta = (value - base) * 100
        return f" ({'+' if delta >= 0 else '−'}{abs(delta):.1f} pt)"
    return f" ({value / base:.2f}×)" if base else ""


def render(report: EvalReport) -> None:
    from rich.table import Table

    models = report.models
    table = Table(
        title=f"{report.dataset} · {report.split} ({report.examples:,} queries) · {report.threads} threads",
        title_justify="left",
    )
    table.add_column("metric")
    for m in models:
        table.add_column(m.model, justify="right")
    for metric in QUALITY:
        table.add_row(metric.long, *row_cells(metric, [m.metric(metric.key) for m in models]))
    if any(m.oos_rule is not None for m in models):
        rules = [m.oos_rule for m in models]
        table.add_row("OOS score", *(r.score.replace("_", " ") if r else "—" for r in rules))
        table.add_row("OOS threshold (validation)", *(f"{r.threshold:.2f}" if r else "—" for r in rules))
        turned = [r and r.in_scope_rejected for r in rules]
        table.add_row("in-scope queries turned away", *("—" if v is None else f"{v:.2%}" for v in turned))
        for metric in QUALITY:
            values = [m.rule_metric(metric.key) for m in models]
            table.add_row(f"{metric.long} with OOS rule", *row_cells(metric, values))
    for score, metric in separation_rows(models):
        values = [m.separation_metric(score, metric.key) for m in models]
        table.add_row(f"{metric.long} ({score.replace('_', ' ')})", *row_cells(metric, values))
    for metric in COST:
        spread = [f" ± {m.latency_ms_std:.2f}" for m in models] if metric.key == "latency_ms_mean" else None
        table.add_row(metric.long, *row_cells(metric, [m.metric(metric.key) for m in models], spread))
    if len(models) > 1:
        table.add_row("agreement", "—", *(f"{m.agreement:.4f}" for m in models[1:]))
    console.print(table)
    render_intent_losses(models)
    render_worst_intents(models)


def render_worst_intents(models: list[ModelResult], top: int = 5) -> None:
    """Each model's intents of lowest F1 and what their queries were taken for (all of them are in the JSON)."""
    from rich.table import Table

    rows = [(m.model, r) for m in models for r in m.per_intent[:top] if r.f1 < 1.0]
    if not rows:
        return
    table = Table(title="intents of lowest F1, and what they were confused with", title_justify="left")
    for col in ("model", "intent", "precision", "recall", "F1", "support", "confused with"):
        table.add_column(col, justify="left" if col in ("model", "intent", "confused with") else "right")
    for name, r in rows:
        confused = ", ".join(f"{c.intent} ({c.count})" for c in r.confused_with)
        cells = (f"{r.precision:.2f}", f"{r.recall:.2f}", f"{r.f1:.2f}", str(r.support))
        table.add_row(name, r.intent, *cells, confused)
    console.print(table)


def render_intent_losses(models: list[ModelResult], top: int = 10) -> None:
    """The intents that lost the most accuracy against the first model (all of them are in the JSON)."""
    from rich.table import Table

    rows = [(m.model, loss) for m in models[1:] for loss in (m.intent_losses or [])[:top] if loss.lost_pt > 0]
    if not rows:
        return
    table = Table(title=f"intents that lost the most accuracy against {models[0].model}", title_justify="left")
    for col in ("model", "intent", "queries", models[0].model, "model's", "lost"):
        table.add_column(col, justify="left" if col in ("model", "intent") else "right")
    for name, loss in rows:
        cells = (str(loss.queries), f"{loss.reference_accuracy:.2f}", f"{loss.accuracy:.2f}", f"{loss.lost_pt:.1f} pt")
        table.add_row(name, loss.intent, *cells)
    console.print(table)


def row_cells(metric, values: list, notes: list[str] | None = None) -> list[str]:
    """One table row: each value (with its note), and its change against the first model's."""
    cells = []
    for i, value in enumerate(values):
        text = "—" if value is None else metric.fmt.format(value) + (notes[i] if notes else "")
        cells.append(text + (relative(metric.key, value, values[0]) if i else ""))
    return cells
