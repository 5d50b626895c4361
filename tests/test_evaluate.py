"""`distill evaluate`: metric values, the JSON report, quality gates, the plot, mixed tokenizers."""

from __future__ import annotations

import json
import textwrap

import pytest
from conftest import assert_one_line_error, block_import, distill_from_teacher, run_cli

from distill_cli.metrics import classification_metrics

KEYS = {
    "model",
    "accuracy",
    "macro_f1",
    "in_scope_accuracy",
    "oos_recall",
    "latency_ms_median",
    "latency_ms_mean",
    "latency_ms_std",
    "latency_ms_p95",
    "throughput_qps",
    "size_mb",
    "parameters",
}


def test_metrics_against_hand_computed_values():
    # labels: 0 = a, 1 = b, 2 = oos
    y_true = [0, 0, 1, 1, 2, 2, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 2, 0, 1]
    m = classification_metrics(y_true, y_pred, oos_id=2)
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["in_scope_accuracy"] == pytest.approx(3 / 4)  # 0,0,1,1 -> 0,1,1,1
    assert m["oos_recall"] == pytest.approx(2 / 4)
    # macro-F1 by hand: a: P=1/2 R=1/2 F=1/2; b: P=2/4 R=2/2 F=2/3; oos: P=1 R=1/2 F=2/3
    assert m["macro_f1"] == pytest.approx((1 / 2 + 2 / 3 + 2 / 3) / 3)
    plain = classification_metrics([0, 1, 1], [0, 1, 0])
    assert plain["accuracy"] == pytest.approx(2 / 3)
    assert plain["in_scope_accuracy"] is None and plain["oos_recall"] is None


def test_json_report_and_run_folder_results(runs, tmp_path):
    r = run_cli(
        "evaluate",
        "teacher",
        "student",
        "--runs-dir",
        runs,
        "--latency-runs",
        "5",
        "--threads",
        "1",
        "--json",
        "--output",
        tmp_path / "report.json",
    )
    assert r.code == 0, r.stderr
    report = r.json
    assert report["split"] == "test" and report["threads"] == 1 and report["latency_runs"] == 5
    assert [m["model"] for m in report["models"]] == ["teacher", "student"]
    for m in report["models"]:
        assert KEYS <= set(m)
        assert 0 <= m["accuracy"] <= 1 and m["oos_recall"] is not None
        assert m["latency_ms_mean"] > 0 and m["latency_ms_p95"] >= m["latency_ms_mean"] * 0.5
        assert 0 < m["latency_ms_median"] <= m["latency_ms_p95"]
        assert m["throughput_qps"] > 0 and m["parameters"] > 0
    teacher, student = report["models"]
    assert student["parameters"] < teacher["parameters"] and student["size_mb"] < teacher["size_mb"]
    assert json.loads((tmp_path / "report.json").read_text()) == report
    stored = json.loads((runs / "student" / "eval_results.json").read_text())
    assert stored["result"] == student and stored["models"] == report["models"]
    # The table for people: side by side, relative to the first model.
    assert "teacher" in r.stderr and "student" in r.stderr and "×)" in r.stderr and " pt)" in r.stderr


def test_evaluation_matches_an_independent_computation(runs):
    from datasets import load_from_disk
    from transformers import pipeline

    r = run_cli("evaluate", "student", "--runs-dir", runs, "--latency-runs", "2", "--json")
    summary = json.loads((runs / "student" / "run.json").read_text())
    test = load_from_disk(summary["dataset"]["path"])["test"]
    names = test.features["label"].names
    clf = pipeline("text-classification", model=str(runs / "student"), device="cpu")
    preds = [p["label"] for p in clf(list(test["text"]), batch_size=16, truncation=True, max_length=128)]
    expected = sum(p == names[y] for p, y in zip(preds, test["label"])) / len(preds)
    assert r.json["models"][0]["accuracy"] == pytest.approx(expected)


def test_latency_gate_reads_the_median_not_a_mean_one_slow_run_moved():
    from distill_cli.commands.evaluate import check_gates
    from distill_cli.records import EvalReport

    def report(**model):
        return EvalReport(split="test", dataset="d", examples=1, threads=1, models=[{"path": "p", **model}])

    # Four runs of 2 ms and one of 40 (another job woke up): mean 9.6 ms, median 2 ms.
    model = {"model": "student", "accuracy": 0.9, "latency_ms_median": 2.0, "latency_ms_mean": 9.6}
    assert check_gates(report(**model), None, 5.0, None) == []
    [line] = check_gates(report(**{**model, "latency_ms_median": 6.0}), None, 5.0, None)
    assert line == "student: median latency 6.00 ms > --max-latency-ms 5.0 (over by 1.00 ms)"


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--min-accuracy", "1.01"], "accuracy {acc} < --min-accuracy 1.01"),
        (["--max-latency-ms", "0.0001"], "median latency"),
        (["--max-accuracy-drop", "-100"], "below teacher > --max-accuracy-drop -100"),
    ],
)
def test_quality_gates_exit_1_naming_model_and_margin(runs, flags, needle):
    r = run_cli("evaluate", "teacher", "student", "--runs-dir", runs, "--latency-runs", "2", "--json", *flags)
    assert r.code == 1, r.stderr
    report = r.json  # the report is still printed for the CI log
    gate_lines = [ln for ln in r.stderr.splitlines() if ln.startswith("gate failed:")]
    assert gate_lines and all(" by " in ln for ln in gate_lines)
    acc = f"{report['models'][1]['accuracy']:.4f}"
    assert any("student" in ln and needle.format(acc=acc) in ln for ln in gate_lines), gate_lines
    passing = run_cli(
        "evaluate",
        "teacher",
        "student",
        "--runs-dir",
        runs,
        "--latency-runs",
        "2",
        "--min-accuracy",
        "0",
        "--max-accuracy-drop",
        "100",
    )
    assert passing.code == 0


def test_plot_is_a_png_that_opens(runs, tmp_path):
    r = run_cli(
        "evaluate", "teacher", "student", "--runs-dir", runs, "--latency-runs", "2", "--plot", tmp_path / "plot.png"
    )
    assert r.code == 0, r.stderr
    from PIL import Image

    with Image.open(tmp_path / "plot.png") as img:
        assert img.format == "PNG" and img.size[0] > 300 and img.size[1] > 200


def test_plot_without_matplotlib_exits_2_before_any_work(runs, monkeypatch):
    block_import(monkeypatch, "matplotlib")
    r = run_cli("evaluate", "teacher", "--runs-dir", runs, "--plot", "p.png")
    assert_one_line_error(r, 2, "pip install 'distill-cli[plot]'")


def test_two_tokenizers_on_one_prepared_dataset(runs, tiny_distilbert, tmp_path):
    # A student with another model type and another vocabulary, distilled from the BERT teacher.
    r = distill_from_teacher(runs, tiny_distilbert, "--epochs", "2", "--name", "other-vocab")
    assert r.code == 0, r.stderr
    prepared = tmp_path / "prepared"
    assert (
        run_cli("prepare", "--dataset", "demo-intents", "--student", runs / "teacher", "--output", prepared).code == 0
    )
    r = run_cli(
        "evaluate", "teacher", "other-vocab", "--runs-dir", runs, "--dataset", prepared, "--latency-runs", "2", "--json"
    )
    assert r.code == 0, r.stderr
    teacher, other = r.json["models"]
    assert teacher["parameters"] != other["parameters"] and 0 <= other["accuracy"] <= 1
    # The same model evaluated on data prepared for the other tokenizer scores the same.
    again = run_cli(
        "evaluate", "other-vocab", "--runs-dir", runs, "--dataset", "demo-intents", "--latency-runs", "2", "--json"
    )
    assert again.json["models"][0]["accuracy"] == pytest.approx(other["accuracy"])


def test_extra_metric_from_a_local_evaluate_module(runs, tmp_path):
    module = tmp_path / "errors_count" / "errors_count.py"
    module.parent.mkdir()
    module.write_text(
        textwrap.dedent("""
        import datasets
        import evaluate

        class ErrorsCount(evaluate.Metric):
            def _info(self):
                return evaluate.MetricInfo(
                    description="number of wrong predictions", citation="", inputs_description="",
                    features=datasets.Features({"predictions": datasets.Value("int64"),
                                                "references": datasets.Value("int64")}))

            def _compute(self, predictions, references):
                return {"errors": sum(p != r for p, r in zip(predictions, references))}
    """)
    )
    flags = ("--runs-dir", runs, "--latency-runs", "2", "--metric", str(module))
    refused = run_cli("evaluate", "student", *flags)  # a metric is code: it runs only when allowed
    assert_one_line_error(refused, 2, "--metric runs the metric's own code", "--trust-remote-code")
    r = run_cli("evaluate", "student", *flags, "--trust-remote-code", "--json")
    assert r.code == 0, r.stderr
    m = r.json["models"][0]
    n = json.loads((runs / "student" / "run.json").read_text())["dataset"]["splits"]["test"]
    assert m["extra_metrics"][str(module)]["errors"] == round((1 - m["accuracy"]) * n)
    missing = run_cli("evaluate", "student", *flags[:2], "--metric", "no_such_metric_anywhere", "--trust-remote-code")
    assert_one_line_error(missing, 2, "cannot load metric 'no_such_metric_anywhere'")


def test_bad_model_and_split(runs):
    assert_one_line_error(run_cli("evaluate", "teacher", "./nope", "--runs-dir", runs), 2, "model not found: ./nope")
    r = run_cli("predict", "studnet", "hello", "--runs-dir", runs)  # a misspelt run, offline: named as such
    assert_one_line_error(r, 2, "no run, folder or alias named 'studnet'")
    assert_one_line_error(run_cli("evaluate", "teacher", "--runs-dir", runs, "--split", "dev"), 2, "no 'dev' split")
    # An output that cannot be written is refused before the evaluation, not after it.
    r = run_cli("evaluate", "teacher", "--runs-dir", runs, "--output", runs)
    assert_one_line_error(r, 2, "it is a folder")
    r = run_cli("evaluate", "teacher", "--runs-dir", runs, "--plot", runs / "no" / "such" / "plot.png")
    assert_one_line_error(r, 2, "its folder does not exist")


def test_agreement_and_the_intents_that_lost_the_most(runs, tmp_path):
    r = run_cli("evaluate", "teacher", "student", "teacher", "--runs-dir", runs, "--latency-runs", "4", "--json")
    assert r.code == 0, r.stderr
    teacher, student, again = r.json["models"]
    assert "agreement" not in teacher and again["agreement"] == 1.0
    assert all(loss["lost_pt"] == 0 for loss in again["intent_losses"])
    # The same numbers from predictions made independently, by `distill predict`.
    from datasets import load_from_disk

    test = load_from_disk(json.loads((runs / "student" / "run.json").read_text())["dataset"]["path"])["test"]
    names = test.features["label"].names
    gold = [names[y] for y in test["label"]]
    (tmp_path / "t.txt").write_text("\n".join(test["text"]))

    def argmax(model):
        out = run_cli("predict", model, "--runs-dir", runs, "--file", tmp_path / "t.txt", "--json").stdout
        return [json.loads(line)["top_k"][0]["intent"] for line in out.splitlines()]

    t, s = argmax("teacher"), argmax("student")
    assert student["agreement"] == pytest.approx(sum(a == b for a, b in zip(t, s)) / len(t))
    losses = student["intent_losses"]
    assert sorted(loss["intent"] for loss in losses) == sorted(set(gold))
    assert [loss["lost_pt"] for loss in losses] == sorted((loss["lost_pt"] for loss in losses), reverse=True)
    worst = losses[0]
    rows = [i for i, g in enumerate(gold) if g == worst["intent"]]
    assert worst["queries"] == len(rows)
    assert worst["reference_accuracy"] == pytest.approx(sum(t[i] == gold[i] for i in rows) / len(rows))
    assert worst["accuracy"] == pytest.approx(sum(s[i] == gold[i] for i in rows) / len(rows))
    assert "agreement" in r.stderr and "intents that lost the most" in r.stderr
    # Latency was timed round-robin: every model got the same number of timed queries.
    assert r.json["latency_runs"] == 4
