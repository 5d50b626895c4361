"""`distill prepare`: every input format, label alignment to a teacher, caching, and bad inputs."""

import csv
import json
import os
import time
from pathlib import Path

import pytest
from conftest import CLINC, DEMO, ROWS, assert_one_line_error, run_cli


def prepare(tiny_bert, dataset, *extra):
    return run_cli("prepare", "--dataset", dataset, "--student", tiny_bert, "--json", *extra)


def write_rows(path: Path, rows=ROWS, text="text", label="label") -> Path:
    if path.suffix == ".json":
        path.write_text(json.dumps([{text: t, label: lab} for t, lab in rows]))
    elif path.suffix == ".jsonl":
        path.write_text("\n".join(json.dumps({text: t, label: lab}) for t, lab in rows) + "\n")
    elif path.suffix == ".csv":
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow([text, label])
            w.writerows(rows)
    elif path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({text: [t for t, _ in rows], label: [lab for _, lab in rows]}), path)
    return path


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv", ".parquet"])
def test_single_file_formats(tiny_bert, tmp_path, suffix):
    result = prepare(tiny_bert, write_rows(tmp_path / f"data{suffix}"))
    assert result.code == 0, result.stderr
    out = result.json
    assert out["labels"] == ["alarm", "oos", "weather"] and out["num_labels"] == 3
    # No validation split in the file: a stratified one (one per class here) is carved from train.
    assert out["splits"] == {"train": 7, "validation": 3, "test": 0}
    from datasets import load_from_disk

    dsd = load_from_disk(out["output"])
    assert sorted(dsd["validation"]["label"]) == [0, 1, 2]
    assert {"input_ids", "attention_mask", "text", "label"} <= set(dsd["train"].column_names)
    manifest = json.loads((Path(out["output"]) / "manifest.json").read_text())
    assert manifest["splits"] == {"train": 7, "validation": 3} and manifest["oos_label"] == "oos"
    assert manifest["content_hash"] and manifest["tokenizer_fingerprint"]


def test_folder_of_split_files_and_named_columns(tiny_bert, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    write_rows(folder / "train.csv", ROWS, "utterance", "category")
    write_rows(folder / "dev.jsonl", ROWS[:4], "utterance", "category")
    write_rows(folder / "test.parquet", ROWS[4:], "utterance", "category")
    (folder / "notes.txt").write_text("ignored")
    result = prepare(tiny_bert, folder)
    assert result.code == 0, result.stderr
    assert result.json["splits"] == {"train": 10, "validation": 4, "test": 6}
    # Columns that detection would not find are named with flags.
    write_rows(tmp_path / "odd.json", ROWS, "q", "y")
    named = prepare(tiny_bert, tmp_path / "odd.json", "--text-column", "q", "--label-column", "y")
    assert named.code == 0 and named.json["labels"] == ["alarm", "oos", "weather"]


def test_raw_clinc_layout_and_the_embedded_dataset(tiny_bert, tmp_path):
    clinc = {
        "train": [[t, lab] for t, lab in ROWS if lab != "oos"],
        "val": [["wake me up", "alarm"]],
        "test": [["rain later?", "weather"]],
        "oos_train": [["what is love", "oos"]],
        "oos_val": [["who are you", "oos"]],
        "oos_test": [["sing", "oos"]],
    }
    (tmp_path / "clinc.json").write_text(json.dumps(clinc))
    result = prepare(tiny_bert, tmp_path / "clinc.json")
    assert result.code == 0, result.stderr
    assert result.json["splits"] == {"train": 7, "validation": 2, "test": 2}

    demo = prepare(tiny_bert, "demo-intents")
    assert demo.code == 0, demo.stderr
    raw = json.loads(DEMO.read_text())
    assert demo.json["splits"] == {
        "train": len(raw["train"]) + len(raw["oos_train"]),
        "validation": len(raw["val"]) + len(raw["oos_val"]),
        "test": len(raw["test"]) + len(raw["oos_test"]),
    }
    assert 9 <= demo.json["num_labels"] - 1 <= 12 and "oos" in demo.json["labels"]


@pytest.mark.skipif(not CLINC.is_file(), reason=f"CLINC150 not found at {CLINC} (../shared is missing)")
def test_real_clinc150_plus(tmp_path):
    # The real tokenizer of the offline MiniLM-L6 encoder, as in the command.
    result = run_cli("prepare", "--dataset", CLINC, "--student", "minilm-l6", "--output", tmp_path / "clinc", "--json")
    assert result.code == 0, result.stderr
    out = result.json
    assert out["splits"] == {"train": 15250, "validation": 3100, "test": 5500}
    assert out["num_labels"] == 151 and "oos" in out["labels"]
    from datasets import load_from_disk

    test = load_from_disk(str(tmp_path / "clinc"))["test"]
    oos = out["labels"].index("oos")
    assert sum(1 for x in test["label"] if x == oos) == 1000


def test_one_example_per_class_leaves_no_validation_split_and_is_refused(tiny_bert, tmp_path):
    data = write_rows(tmp_path / "few.csv", [("play jazz", "music"), ("wake me at 7", "alarm"), ("hi", "greet")])
    r = prepare(tiny_bert, data, "--output", tmp_path / "out")
    assert_one_line_error(r, 2, "too few examples to hold out a validation split")
    assert not (tmp_path / "out").exists()


def test_second_run_reuses_the_saved_result(tiny_bert, tmp_path):
    data = write_rows(tmp_path / "d.csv")
    first = prepare(tiny_bert, data, "--output", tmp_path / "out")
    stamp = (tmp_path / "out" / "manifest.json").stat().st_mtime_ns
    second = prepare(tiny_bert, data, "--output", tmp_path / "out")
    assert first.json["reused"] is False and second.json["reused"] is True
    assert (tmp_path / "out" / "manifest.json").stat().st_mtime_ns == stamp
    # Other inputs into the same folder: refused, the folder untouched; --overwrite replaces it.
    other = write_rows(tmp_path / "e.csv", ROWS[:6] + [("new one", "music"), ("more music", "music")])
    refused = prepare(tiny_bert, other, "--output", tmp_path / "out")
    assert_one_line_error(refused, 2, "already holds other data", "--overwrite")
    assert (tmp_path / "out" / "manifest.json").stat().st_mtime_ns == stamp
    replaced = prepare(tiny_bert, other, "--output", tmp_path / "out", "--overwrite")
    assert replaced.code == 0 and "music" in replaced.json["labels"]
    # Nothing half-written lies around.
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    # --overwrite never replaces a folder that is not a prepared dataset.
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    r = prepare(tiny_bert, other, "--output", tmp_path / "notes", "--overwrite")
    assert_one_line_error(r, 2, "is not a dataset prepared by distill")
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"


def test_labels_follow_the_teacher_and_mismatch_is_named(tiny_bert, tmp_path):
    import shutil

    from transformers import AutoConfig

    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_bert, teacher)
    config = AutoConfig.from_pretrained(teacher)
    names = ["weather", "oos", "music", "alarm"]
    config.id2label, config.label2id = dict(enumerate(names)), {n: i for i, n in enumerate(names)}
    config.save_pretrained(teacher)
    data = write_rows(tmp_path / "d.json")
    aligned = prepare(tiny_bert, data, "--teacher", teacher)
    assert aligned.code == 0, aligned.stderr
    assert aligned.json["labels"] == names  # the teacher's id order, including a label the data lacks

    extra = write_rows(tmp_path / "e.json", ROWS + [("book a taxi", "taxi"), ("order a cab", "cab")])
    mismatch = prepare(tiny_bert, extra, "--teacher", teacher)
    assert_one_line_error(mismatch, 2, "2 dataset label(s) unknown to the teacher", "cab, taxi")


def test_bad_inputs_exit_nonzero_with_one_line_and_touch_nothing(tiny_bert, tmp_path):
    good = prepare(tiny_bert, write_rows(tmp_path / "good.csv"), "--output", tmp_path / "out")
    assert good.code == 0
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*")}

    (tmp_path / "empty.json").write_text("")
    (tmp_path / "garbage.json").write_text("{not json at all")
    (tmp_path / "fake.parquet").write_text("text,label\na,b\n")
    (tmp_path / "binary.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    write_rows(tmp_path / "nolabel.csv", ROWS, "text", "whatever")
    write_rows(tmp_path / "oneclass.csv", [(t, "same") for t, _ in ROWS])
    cases = [
        (tmp_path / "missing.csv", 2, "dataset not found"),
        (tmp_path / "empty.json", 2, "dataset file is empty"),
        (tmp_path / "garbage.json", 2, "is not valid JSON"),
        (tmp_path / "fake.parquet", 2, "is not a Parquet file"),
        (tmp_path / "binary.csv", 2, "is not a"),
        (tmp_path / "nolabel.csv", 2, "no label column among text, whatever"),
        (tmp_path / "oneclass.csv", 2, "has a single class ('same')"),
    ]
    for path, code, needle in cases:
        result = prepare(tiny_bert, path, "--output", tmp_path / "out")
        assert_one_line_error(result, code, needle)
    missing_col = prepare(tiny_bert, tmp_path / "good.csv", "--text-column", "query", "--output", tmp_path / "out")
    assert_one_line_error(missing_col, 2, "no column 'query'")
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*")} == before


def write_json_rows(path: Path, records: list[dict]) -> Path:
    path.write_text(json.dumps(records))
    return path


def test_columns_and_labels_are_read_exactly_or_refused(tiny_bert, tmp_path):
    """Each case: one line naming the file, the row or line and the column; nothing written."""
    base = [{"text": t, "label": lab} for t, lab in ROWS]
    (tmp_path / "dup.csv").write_text("text,text,label\na,b,x\nc,d,y\n")
    (tmp_path / "extra.csv").write_text("text,label\nwake me,alarm\nrain, today,weather\nhi,oos\n")
    (tmp_path / "lines.json").write_text("\n".join(json.dumps(r) for r in base[:3]) + '\n{"text": "x", oops}\n')
    (tmp_path / "empty-label.csv").write_text("text,label\nwake me,alarm\nrain,\nsun,weather\nhi,alarm\n")
    write_json_rows(tmp_path / "null.json", base[:4] + [{"text": "odd", "label": None}] + base[4:])
    write_json_rows(tmp_path / "nan.json", base[:2] + [{"text": "odd", "label": float("nan")}] + base[2:])
    numbers = [{"text": r["text"], "label": i % 3} for i, r in enumerate(base)]
    numbers[7]["label"] = 1.0
    write_json_rows(tmp_path / "numbers.json", numbers)
    folder = tmp_path / "only-in-test"
    folder.mkdir()
    write_rows(folder / "train.csv")
    write_rows(folder / "test.csv", [("wake me", "alarm"), ("play jazz", "music")])
    cases = [
        ("dup.csv", "dup.csv: the header names column 'text' twice"),
        ("extra.csv", "extra.csv: line 3 has 3 fields, the header has 2"),
        ("lines.json", "lines.json is not valid JSON lines: line 4"),
        ("empty-label.csv", "the train split, column 'label': row 2 has no label"),
        ("null.json", "column 'label': row 5 has no label (None)"),
        ("nan.json", "column 'label': row 3 has no label (nan)"),
        ("numbers.json", "labels '1' (train row 2) and '1.0' (train row 8) are one number written two ways"),
        ("only-in-test", "label 'music' (test row 2) never occurs in train"),
    ]
    for name, needle in cases:
        result = prepare(tiny_bert, tmp_path / name, "--output", tmp_path / "out")
        assert_one_line_error(result, 2, needle)
        assert not (tmp_path / "out").exists()
    # The same rows read right: JSON lines in a .json file, numbers written one way, a quoted comma.
    (tmp_path / "lines.json").write_text("\n".join(json.dumps(r) for r in base) + "\n")
    numbers[7]["label"] = 1
    write_json_rows(tmp_path / "numbers.json", numbers)
    (tmp_path / "extra.csv").write_text('text,label\nwake me,alarm\n"rain, today",weather\n' + "".join(
        f"{t},{lab}\n" for t, lab in ROWS))  # fmt: skip
    for name, labels in [("lines.json", ["alarm", "oos", "weather"]), ("numbers.json", ["0", "1", "2"])]:
        r = prepare(tiny_bert, tmp_path / name)
        assert r.code == 0, r.stderr
        assert r.json["labels"] == labels
    r = prepare(tiny_bert, tmp_path / "extra.csv")
    assert r.code == 0, r.stderr
    assert sum(r.json["splits"].values()) == len(ROWS) + 2


def test_a_damaged_prepared_dataset_is_never_used(tiny_bert, tmp_path):
    """Flipped bytes, a truncated file, labels reordered in the manifest: the automatic cache entry is
    rebuilt with a warning; a folder the user named is refused with the command that rebuilds it."""
    data = write_rows(tmp_path / "d.csv")
    first = prepare(tiny_bert, data)
    auto = Path(first.json["output"])
    arrow = next(auto.rglob("train/*.arrow"))
    original = arrow.read_bytes()
    blob = bytearray(original)
    blob[len(blob) // 2] ^= 0xFF
    arrow.write_bytes(bytes(blob))
    again = prepare(tiny_bert, data)
    assert again.code == 0 and again.json["reused"] is False
    assert "the cached dataset" in again.stderr and "train/" in again.stderr and "rebuilding" in again.stderr
    assert arrow.read_bytes() == original  # rebuilt as it was
    third = prepare(tiny_bert, data)
    assert third.json["reused"] is True and third.stderr.count("warning") == 0

    named = tmp_path / "named"
    assert prepare(tiny_bert, data, "--output", named).code == 0
    manifest = json.loads((named / "manifest.json").read_text())
    manifest["labels"] = list(reversed(manifest["labels"]))  # the manifest no longer matches the ClassLabel
    (named / "manifest.json").write_text(json.dumps(manifest))
    r = run_cli("finetune", "--dataset", named, "--student", tiny_bert, "--max-length", "24", "--epochs", "1")
    assert_one_line_error(r, 2, f"prepared dataset {named} is damaged", "label order", "--overwrite")
    assert not Path("runs").exists()
    assert prepare(tiny_bert, data, "--output", named, "--overwrite").code == 0
    victim = next(named.rglob("validation/*.arrow"))
    victim.write_bytes(victim.read_bytes()[:100])  # truncated
    r = run_cli("evaluate", tiny_bert, "--dataset", named)
    assert_one_line_error(r, 2, "is damaged", "validation/", "does not match its checksum")


def test_hub_dataset_while_offline_fails_fast(tiny_bert, monkeypatch):
    start = time.perf_counter()
    result = prepare(tiny_bert, "clinc_oos:plus")
    assert_one_line_error(result, 1, "clinc_oos:plus", "HF_HUB_OFFLINE=1")
    # Not offline by setting, but no network: detected by a quick probe, not the client's retry loop.
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    from distill_cli.hub import hub_unreachable_reason

    hub_unreachable_reason.cache_clear()
    result = prepare(tiny_bert, "clinc_oos:plus")
    assert_one_line_error(result, 1, "cannot connect to http://127.0.0.1:9")
    assert time.perf_counter() - start < 10


def test_hub_model_while_offline_fails_fast(tmp_path):
    write_rows(tmp_path / "d.csv")
    start = time.perf_counter()
    result = run_cli("prepare", "--dataset", tmp_path / "d.csv", "--student", "someone/not-cached-model")
    assert_one_line_error(result, 1, "someone/not-cached-model", "unreachable", "local model directory")
    assert time.perf_counter() - start < 10
    assert os.listdir(tmp_path) == ["d.csv"]
