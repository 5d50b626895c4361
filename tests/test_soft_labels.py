"""A teacher that is a file (``--teacher-labels F``): the same student as the teacher whose logits it holds,
hard labels and probabilities train a student, rows it does not cover keep their label alone (counted in
run.json), and every bad row is one line naming it, before any training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TRAIN_FLAGS, assert_one_line_error, run_cli

STUDENT = ("--student-layers", "2", "--epochs", "2", "--seed", "7")


def teacher_targets(runs: Path) -> tuple[list[str], list[str], list[list[float]]]:
    """The training texts of a distill run from the tiny teacher, the labels, and the cached teacher logits
    (exactly what the student was distilled from)."""
    import datasets
    from safetensors.torch import load_file

    r = run_cli("distill", *TRAIN_FLAGS, "--runs-dir", runs, "--teacher", "teacher", "--student", "teacher",
                *STUDENT, "--name", "from-model")  # fmt: skip
    assert r.code == 0, r.stderr
    record = json.loads((runs / "from-model" / "run.json").read_text())
    texts = list(datasets.load_from_disk(record["dataset"]["path"])["train"]["text"])
    (entry,) = (Path.cwd() / "cache" / "teacher-logits").glob("*.safetensors")
    logits = load_file(entry)["logits"]
    assert logits.shape[0] == len(texts)
    return texts, record["labels"], logits.tolist()


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def student_logits(folder: Path, texts: list[str]):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    enc = AutoTokenizer.from_pretrained(folder)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**enc).logits


def test_a_file_of_a_teachers_logits_makes_the_same_student(runs, tmp_path):
    texts, labels, logits = teacher_targets(runs)
    rows = [{"text": t, "logits": dict(zip(labels, row))} for t, row in zip(texts, logits)]
    labels_file = write_jsonl(tmp_path / "llm.jsonl", rows)
    r = run_cli("distill", *TRAIN_FLAGS, "--runs-dir", runs, "--teacher-labels", labels_file, "--student",
                "teacher", *STUDENT, "--name", "from-file")  # fmt: skip
    assert r.code == 0, r.stderr
    probe = texts[:12]
    a, b = student_logits(runs / "from-model", probe), student_logits(runs / "from-file", probe)
    assert (a - b).abs().max().item() < 1e-5
    teacher = json.loads((runs / "from-file" / "run.json").read_text())["teacher"]
    assert teacher["mode"] == "labels" and teacher["labelled"] == len(texts) and teacher["labels_alone"] == 0


def test_hard_labels_and_probabilities_with_rows_left_out(runs, tmp_path):
    texts, labels, logits = teacher_targets(runs)
    half = len(texts) // 2
    hard = [{"query": t, "label": labels[max(range(len(labels)), key=row.__getitem__)]}
            for t, row in zip(texts[:half], logits)]  # fmt: skip
    csv = tmp_path / "votes.csv"
    csv.write_text("query,label\n" + "".join(f'"{row["query"]}",{row["label"]}\n' for row in hard))
    r = run_cli("distill", *TRAIN_FLAGS, "--runs-dir", runs, "--teacher-labels", csv, "--student", "teacher",
                *STUDENT, "--name", "votes", "--json")  # fmt: skip
    assert r.code == 0, r.stderr
    teacher = json.loads((runs / "votes" / "run.json").read_text())["teacher"]
    assert (teacher["labelled"], teacher["labels_alone"]) == (half, len(texts) - half)
    assert f"teacher labels: {half:,} of {len(texts):,} training rows" in r.stderr

    probs = [{"text": t.upper(), "probs": {labels[0]: 0.25, labels[1]: 0.75}} for t in texts]  # matched normalised
    probs_file = write_jsonl(tmp_path / "p.jsonl", probs)
    r = run_cli("distill", *TRAIN_FLAGS, "--runs-dir", runs, "--teacher-labels", probs_file, "--student", "teacher",
                *STUDENT, "--name", "probs")  # fmt: skip
    assert r.code == 0, r.stderr
    assert json.loads((runs / "probs" / "run.json").read_text())["teacher"]["labelled"] == len(texts)


@pytest.mark.parametrize(
    "row, needles",
    [
        ({"text": "wake me at 7", "label": "no_such_intent"}, ("row 2", "no_such_intent", "not one of the run's")),
        ({"text": "wake me at 7", "probs": {"translate": 0.5, "weather": 0.4}}, ("row 2", "sum to 1", "0.9")),
        ({"text": "wake me at 7", "probs": {"translate": float("nan")}}, ("row 2", "finite number")),
        ({"text": "", "label": "weather"}, ("row 2", "no text")),
        ({"text": "wake me at 7", "logits": {"translate": 1.0}}, ("row 2", "no logit for label")),
    ],
)
def test_every_bad_row_is_one_line_naming_it(runs, tmp_path, row, needles):
    good = {"text": "what is the weather", "label": "weather"}
    kind = next(k for k in row if k != "text")
    if kind == "probs":  # one kind a file
        good = {"text": "what is the weather", "probs": {"weather": 1.0}}
    lines = [good, row] if kind != "logits" else [row]  # logits name every label: the bad row alone
    needles = tuple(n.replace("row 2", f"row {len(lines)}") for n in needles)
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    r = run_cli("distill", *TRAIN_FLAGS, "--runs-dir", runs, "--teacher-labels", path, "--student", "teacher",
                *STUDENT, "--name", "bad")  # fmt: skip
    assert_one_line_error(r, 2, "--teacher-labels", *needles)
    assert not (runs / "bad").exists() and not (runs / "bad.partial").exists()


def test_refused_before_any_compute(runs, tmp_path):
    path = write_jsonl(tmp_path / "l.jsonl", [{"text": "wake me at 7", "label": "alarm"}])
    base = ("distill", *TRAIN_FLAGS, "--runs-dir", runs, "--student", "teacher", "--teacher-labels")
    assert_one_line_error(run_cli(*base, tmp_path / "none.jsonl"), 2, "none.jsonl", "no such file")
    assert_one_line_error(run_cli(*base, path, "--teacher", "teacher"), 2, "two teachers")
    assert_one_line_error(run_cli(*base, path, "--augment", "2"), 2, "--augment")
    both = tmp_path / "both.jsonl"
    write_jsonl(both, [{"text": "wake me at 7", "label": "alarm", "probs": {"alarm": 1.0}}])
    assert_one_line_error(run_cli(*base, both, "--name", "both"), 2, "one column of label, probs or logits")
