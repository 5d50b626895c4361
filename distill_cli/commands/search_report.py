"""What ``distill search`` shows: the trials table and costs for people, and the optimisation plot."""

from __future__ import annotations

from pathlib import Path

from distill_cli.figures import pyplot, save_figure
from distill_cli.search_space import SearchSettings

SHORT = {"temperature": "T", "learning_rate": "lr", "student_layers": "layers", "weight_decay": "wd"}


def render(report: dict) -> None:
    """The trials, best first, and the costs, for people (on stderr)."""
    from rich.table import Table

    from distill_cli.ui import console

    keys = sorted({k for r in report["table"] for k in r["params"]}, key=list(SearchSettings.model_fields).index)
    table = Table(title=f"study {report['study']}", title_justify="left")
    for col in ("trial", "state", *(SHORT.get(k, k) for k in keys), "validation expected accuracy by epoch", "s"):
        table.add_column(col, justify="left" if col.startswith(("state", "validation")) else "right")
    for r in report["table"]:
        params = [f"{r['params'][k]:.3g}" if k in r["params"] else "—" for k in keys]
        epochs = " ".join(f"{a:.3f}" for a in r["epoch_values"]) or (r["error"] or "")
        seconds = f"{r['seconds']:.0f}" if r["seconds"] is not None else "—"
        table.add_row(str(r["trial"]), r["state"], *params, epochs, seconds)
    console.print(table)
    best = report["best"]
    if best is not None:
        console.print(f"best: trial {best['trial']}, {report['objective']} {best['value']:.4f}")
        console.print(f"  config: {best['config']}" + (f"\n  model:  {best['run']}" if best["run"] else ""))
    console.print(
        f"this invocation: {report['added']} trial(s) in {report['wall_s']:.0f}s; teacher {report['teacher_s']:.1f}s, "
        f"students {report['student_s']:.0f}s; pruning skipped {report['epochs_saved_by_pruning']:.0%} of the epochs"
    )


def plot_study(study, name: str, path: Path) -> None:
    """Optimisation history (each finished trial, and the best so far) and parameter importances of the
    Optuna ``study``."""
    import optuna

    plt = pyplot()
    done = sorted((t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"), key=lambda t: t.number)
    fig, (history, importance) = plt.subplots(1, 2, figsize=(13, 5))
    if done:
        values = [t.value * 100 for t in done]
        history.scatter([t.number for t in done], values, label="finished trial")
        best = [max(values[: i + 1]) for i in range(len(values))]
        history.step([t.number for t in done], best, where="post", label="best so far")
        history.legend(loc="lower right")
    history.set_xlabel("Trial")
    history.set_ylabel("Validation expected accuracy with the rule (%)")
    history.set_title(f"Optimisation history · {name}")
    if len(done) >= 2:
        scores = optuna.importance.get_param_importances(study)
        importance.barh(list(scores)[::-1], list(scores.values())[::-1])
        importance.set_xlabel("Importance (fANOVA)")
    else:
        importance.text(0.5, 0.5, "importances need 2 finished trials", ha="center", va="center")
    importance.set_title("Parameter importances")
    save_figure(fig, path)
