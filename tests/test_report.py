"""Seeing the data and the model: the data checks of prepare, per-intent results, the HTML report in a real
browser, and shell completion."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from conftest import ROWS, assert_one_line_error, run_cli

CLEAN = ROWS[:-1]  # nine queries of three intents, nothing wrong with them


def write_split(path: Path, rows) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)


def dataset(tmp_path: Path, train, test, validation=(("hello there", "oos"), ("rain later", "weather"))) -> Path:
    folder = tmp_path / "data"
    folder.mkdir(exist_ok=True)
    write_split(folder / "train.csv", train)
    write_split(folder / "validation.csv", validation)
    write_split(folder / "test.csv", test)
    return folder


def warnings(result) -> list[str]:
    return [ln for ln in result.stderr.splitlines() if ln.startswith("warning:")]


def test_prepare_names_each_problem_of_the_data_once(tiny_bert, tmp_path):
    train = CLEAN + [
        ("Wake me  at 7", "alarm"),  # a copy of a labelled query (case and spaces aside)
        ("book a flight", "book_flight"),  # a label with one example
        ("What is love", "weather"),  # the text of an 'oos' query, labelled otherwise
    ]
    test = [("is it raining", "weather"), ("sing me something", "oos"), ("alarm in an hour", "alarm")]
    data = dataset(tmp_path, train, test)
    r = run_cli("prepare", "--dataset", data, "--student", tiny_bert, "--json")
    assert r.code == 0, r.stderr
    found = warnings(r)
    assert len(found) == 4, found
    conflict, copies, leak, rare = found
    assert "1 text carries two or more labels: 'what is love' (oos, weather)" in conflict
    assert "1 repeated copy of labelled queries within a split (train 1): 'wake me at 7' ×2 in train" in copies
    assert "1 validation or test query also in train (test 1 of 3 (33.3%)): 'is it raining'" in leak
    assert "1 label has fewer than 3 training examples (smallest: 'book_flight' 1" in rare
    manifest = json.loads((Path(r.json["output"]) / "manifest.json").read_text())
    assert [c["check"] for c in manifest["checks"]] == ["conflicting_labels", "duplicates", "leakage", "rare_labels"]
    assert [c["count"] for c in manifest["checks"]] == [1, 1, 1, 1]
    # Said again whenever a command reads that data.
    again = run_cli("finetune", "--dataset", data, "--student", tiny_bert, "--epochs", "1", "--max-length", "24")
    assert again.code == 0 and warnings(again)[:4] == found
    # --strict: an error naming the first finding, before anything is written.
    strict = run_cli("prepare", "--dataset", data, "--student", tiny_bert, "--strict", "--output", tmp_path / "s")
    assert_one_line_error(strict, 2, "text carries two or more labels", "strict")
    assert not (tmp_path / "s").exists()
    # Dropping is asked for, and counted: the copy and the leaked test query go.
    dropped = run_cli("prepare", "--dataset", data, "--student", tiny_bert, "--drop-duplicates", "--drop-leaks",
                      "--json")  # fmt: skip
    assert dropped.code == 0, dropped.stderr
    assert "dropped 1 duplicates, 1 leaked queries" in dropped.stderr
    assert dropped.json["splits"]["train"] == len(train) - 1 and dropped.json["splits"]["test"] == len(test) - 1
    kinds = [c["check"] for c in json.loads((Path(dropped.json["output"]) / "manifest.json").read_text())["checks"]]
    assert kinds == ["conflicting_labels", "rare_labels"]


def test_a_clean_dataset_gives_no_warning(tiny_bert, tmp_path):
    data = dataset(tmp_path, CLEAN, [("rain tomorrow", "weather"), ("alarm in an hour", "alarm")])
    r = run_cli("prepare", "--dataset", data, "--student", tiny_bert, "--strict", "--json")
    assert r.code == 0, r.stderr
    assert warnings(r) == [] and r.json["checks"] == []


def test_long_texts_are_counted_where_max_length_cuts_them(tiny_bert, tmp_path):
    long = " ".join(["weather"] * 40)
    data = dataset(tmp_path, CLEAN + [(long, "weather")], [("rain tomorrow", "weather")])
    r = run_cli("prepare", "--dataset", data, "--student", tiny_bert, "--max-length", "16")
    assert r.code == 0, r.stderr
    assert any("1 query is longer than max_length 16 tokens and read cut there (train 1)" in w for w in warnings(r))


def test_per_intent_results_are_scikit_learns():
    from sklearn.metrics import classification_report, confusion_matrix

    from distill_cli.metrics import most_confused, per_intent

    labels = ["alarm", "oos", "weather", "music"]
    y_true = [0, 0, 0, 1, 1, 2, 2, 2, 2, 3]
    y_pred = [0, 1, 2, 1, 1, 2, 0, 0, 2, 2]
    rows = {r["intent"]: r for r in per_intent(y_true, y_pred, labels)}
    report = classification_report(y_true, y_pred, labels=[0, 1, 2, 3], target_names=labels, output_dict=True,
                                   zero_division=0)  # fmt: skip
    matrix = confusion_matrix(y_true, y_pred, labels=[0, 1, 2, 3])
    for i, name in enumerate(labels):
        for key, theirs in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score"),
                            ("support", "support")):  # fmt: skip
            assert rows[name][key] == pytest.approx(report[name][theirs]), (name, key)
        expected = sorted(((int(matrix[i][j]), labels[j]) for j in range(4) if j != i and matrix[i][j]), reverse=True)
        assert sorted((c["count"], c["intent"]) for c in rows[name]["confused_with"]) == sorted(expected)
    assert [r["intent"] for r in per_intent(y_true, y_pred, labels)][0] == "music"  # worst F1 first
    assert rows["weather"]["confused_with"] == [{"intent": "alarm", "count": 2}]
    confused = most_confused(y_true, y_pred, labels, size=2)  # 4 errors each, as truth or as answer
    assert confused["intents"] == ["alarm", "weather"] and confused["matrix"] == [[1, 1], [2, 2]]


def test_evaluate_gives_per_intent_results_in_its_json(runs):
    r = run_cli("evaluate", "teacher", "student", "--runs-dir", runs, "--latency-runs", "2", "--json")
    assert r.code == 0, r.stderr
    for m in r.json["models"]:
        intents = m["per_intent"]
        assert sum(i["support"] for i in intents) == r.json["examples"]
        assert [i["f1"] for i in intents] == sorted(i["f1"] for i in intents)
        assert sum(m["score_histogram"]["in_scope"]) + sum(m["score_histogram"]["oos"]) == r.json["examples"]
    assert "intents of lowest F1" in r.stderr or all(i["f1"] == 1.0 for m in r.json["models"] for i in m["per_intent"])


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (Debian's package; .ci/run installs it)")
def test_the_report_opens_in_a_real_browser_with_nothing_fetched(runs, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
    report = tmp_path / "report.html"
    r = run_cli("evaluate", "teacher", "student", "--runs-dir", runs, "--latency-runs", "2", "--report", report)
    assert r.code == 0, r.stderr
    assert f"report written to {report}" in r.stderr
    errors, requests = [], []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.on("request", lambda req: requests.append(req.url))
        page.goto(report.as_uri())
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        tables = page.locator("table").count()
        figures = page.locator("figure img").count()
        heading = page.locator("h1").inner_text()
        first = page.locator("table.sortable tbody tr td").first.inner_text()
        page.locator("table.sortable th").nth(3).click()  # sort by F1, descending after ascending
        page.locator("table.sortable th").nth(3).click()
        resorted = page.locator("table.sortable tbody tr td").first.inner_text()
        browser.close()
    assert errors == [], errors
    assert [u for u in requests if not u.startswith(("file://", "data:"))] == []
    assert tables >= 3 and figures >= 3 and "distill evaluate" in heading
    assert first and resorted  # the sort ran without an error
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report.stat().st_size < 2_000_000


def test_report_and_plot_paths_are_checked_before_the_evaluation(runs, tmp_path):
    r = run_cli("evaluate", "teacher", "--runs-dir", runs, "--report", tmp_path / "nowhere" / "r.html")
    assert_one_line_error(r, 2, "cannot write", "r.html", "its folder does not exist")


def test_shell_completion_prints_a_script_and_completes_run_names(runs, monkeypatch):
    r = run_cli("--show-completion", "bash")
    assert r.code == 0 and "_DISTILL_COMPLETE" in r.stdout and "complete" in r.stdout
    from distill_cli.options import complete_model

    class Ctx:
        params = {"runs_dir": str(runs)}

    assert complete_model(Ctx(), "stu") == ["student"]
    assert complete_model(Ctx(), "") [:2] == ["student", "teacher"] and "minilm-l6" in complete_model(Ctx(), "")
