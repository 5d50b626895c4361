"""Static students (`--student static:<encoder>`): model2vec's own classes, trained by our Trainer against the
teacher's cached logits, saved as a pipeline that loads without torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error, block_import, distill_from_teacher, run_cli, waits_on_lock, working_in

pytest.importorskip("model2vec")

STATIC = ("--static-dims", "16", "--learning-rate", "1e-2", "--batch-size", "32", "--epochs", "8")


@pytest.fixture(scope="module")
def static_run(tiny_runs, tiny_bert, tmp_path_factory) -> Path:
    """A static student made from the tiny BERT's vectors and distilled from the tiny teacher."""
    root = tmp_path_factory.mktemp("static-home")
    with working_in(root):
        r = distill_from_teacher(tiny_runs, f"static:{tiny_bert}", *STATIC, "--alpha", "0.3", "--output", root / "st")
        assert r.code == 0, r.stderr
    return root / "st"


def validation(static_run: Path):
    from distill_cli.config import Config
    from distill_cli.data.prepared import load_for_training
    from distill_cli.modeling import ModelRef, load_tokenizer

    record = json.loads((static_run / "run.json").read_text())
    prepared = Path(record["dataset"]["path"])
    cfg = Config(dataset=str(prepared))
    tokenizer = load_tokenizer(ModelRef("tiny", record["student"]["location"], "dir"), cfg)
    data = load_for_training(cfg, tokenizer, record["student"]["location"])
    ds = data.datasets["validation"]
    return list(ds["text"]), [data.label_names[i] for i in ds["label"]], record


def test_a_static_student_is_a_model2vec_pipeline_that_loads_without_torch(static_run):
    record = json.loads((static_run / "run.json").read_text())
    assert record["student"]["pooling"] == "static" and record["teacher"]["spec"] == "teacher"
    weights = sorted(p.name for p in static_run.glob("*.safetensors"))
    assert weights == ["head.safetensors", "model.safetensors", "oos_features.safetensors"]
    # Its out-of-scope statistics are of its own feature space (the mean static vector), not the teacher's.
    from distill_cli.oos_scores import FeatureStats

    dims = json.loads((static_run / "config.json").read_text()).get("hidden_dim") or record["config"]["static_dims"]
    assert FeatureStats.load(static_run).whitening.shape == (dims, dims)
    assert not list(static_run.rglob("checkpoint-*")) and not list(static_run.glob("*.bin"))
    texts, gold, record = validation(static_run)
    # model2vec's own pipeline, in a process where torch cannot be imported.
    code = (
        "import json, sys; sys.modules['torch'] = None\n"
        "from model2vec.inference import StaticModelPipeline\n"
        f"p = StaticModelPipeline.from_pretrained({str(static_run)!r})\n"
        f"print(json.dumps(p.predict({texts!r}).tolist()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    predicted = json.loads(out.stdout)
    # The same predictions the run was scored with: the accuracy of its best epoch, which it kept.
    accuracy = float(np.mean([p == g for p, g in zip(predicted, gold)]))
    assert accuracy == pytest.approx(record["metrics"]["accuracy"], abs=1.5 / len(gold))
    # The kept epoch is the best by the selection metric: the expected accuracy with the rule.
    assert record["metrics"]["expected_accuracy"] == max(e["expected_accuracy"] for e in record["epochs"])


def test_training_brings_the_static_student_closer_to_the_teacher(static_run, tiny_runs, tiny_bert):
    import torch

    from distill_cli.config import Config
    from distill_cli.modeling import ModelRef, load_for_inference, load_tokenizer
    from distill_cli.training.static_student import build_student, static_model

    texts, _, record = validation(static_run)
    teacher_ref = ModelRef("teacher", str(tiny_runs / "teacher"), "run")
    cfg = Config(static_dims=16, cache_dir=Path(record["config"]["cache_dir"] or "cache"))
    teacher = load_for_inference(teacher_ref, cfg)
    enc = load_tokenizer(teacher_ref, cfg)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        target = teacher(**enc).logits.softmax(-1)

    def kl(logits):
        return torch.nn.functional.kl_div(logits.log_softmax(-1), target, reduction="batchmean").item()

    untrained = build_student(static_model(ModelRef("tiny", str(tiny_bert), "dir"), cfg), cfg, record["labels"]).eval()
    with torch.no_grad():
        before = kl(untrained(**untrained_inputs(untrained, texts)).logits)
    trained = load_for_inference(ModelRef("st", str(static_run), "dir"), cfg)
    after = kl(trained(texts=texts).logits.float())
    assert after < before - 0.05


def untrained_inputs(student, texts):
    batch = student.module.tokenize(texts)
    return {"ids": batch.ids, "offsets": batch.offsets, "lengths": batch.lengths}


def test_evaluate_export_and_push_take_a_static_student(static_run, tiny_runs, tmp_path):
    r = run_cli("evaluate", tiny_runs / "teacher", static_run, "--split", "validation", "--latency-runs", "5", "--json")
    assert r.code == 0, r.stderr
    teacher, static = r.json["models"]
    assert static["accuracy"] == pytest.approx(json.loads((static_run / "run.json").read_text())["metrics"]["accuracy"])
    assert static["size_mb"] < teacher["size_mb"] and static["parameters"] > 0 and "agreement" in static
    # export: a copy with the export record, never an error, whatever the flags.
    r = run_cli("export", static_run, "--quantize", "int8", "--output", tmp_path / "exported", "--json")
    assert r.code == 0, r.stderr
    assert r.json["format"] == "static" and (tmp_path / "exported" / "export.json").is_file()
    again = run_cli("predict", tmp_path / "exported", "set an alarm for seven", "--json")
    assert again.code == 0 and json.loads(again.stdout.splitlines()[0])["intent"]
    # push: the pipeline's files and a card with a model2vec snippet, no local path.
    r = run_cli("push", static_run, "--repo-id", "me/static-intents", "--dry-run", "--json")
    assert r.code == 0, r.stderr
    files = {f["path"] for f in r.json["files"]}
    assert {"model.safetensors", "head.safetensors", "tokenizer.json", "config.json", "README.md"} <= files
    assert "StaticModelPipeline.from_pretrained" in r.json["card"] and "library_name: model2vec" in r.json["card"]


def test_the_static_model_is_made_once_and_cached(runs, tiny_bert, monkeypatch):
    from distill_cli.training import static_student

    made = []
    real = static_student.distill_static
    monkeypatch.setattr(static_student, "distill_static", lambda *a: made.append(1) or real(*a))
    for name in ("a", "b"):
        r = distill_from_teacher(runs, f"static:{tiny_bert}", *STATIC, "--epochs", "1", "--name", name)
        assert r.code == 0, r.stderr
    assert made == [1]
    # Making it (the first run) draws no random number the student's start depends on: both runs, one on a
    # cold cache and one on a warm one, trained the same weights.
    from safetensors.numpy import load_file

    heads = [load_file(runs / name / "head.safetensors") for name in ("a", "b")]
    assert heads[0].keys() == heads[1].keys() and all(np.array_equal(heads[0][k], heads[1][k]) for k in heads[0])


def test_a_second_process_waits_for_the_static_model_the_first_is_making(tiny_bert, tmp_path, monkeypatch):
    """Two search workers need one static model: the later waits on the lock and reads the first's."""
    from distill_cli import modeling
    from distill_cli.config import load_config
    from distill_cli.training import static_student

    cfg = load_config(None, "finetune", {"student": f"static:{tiny_bert}", "static_dims": 16,
                                         "cache_dir": str(tmp_path / "cache")})  # fmt: skip
    encoder = modeling.resolve_model(str(tiny_bert), cfg)
    first = static_student.static_model(encoder, cfg)
    (folder,) = (tmp_path / "cache" / "static").iterdir()
    held = folder.with_name("held")
    folder.rename(held)  # as it is while the first process is still making it
    (lock,) = (tmp_path / "cache" / "locks").glob("static-*.lock")
    made = []
    monkeypatch.setattr(static_student, "distill_static", lambda *a: made.append(1))
    model = waits_on_lock(lock, lambda: static_student.static_model(encoder, cfg), finish=lambda: held.rename(folder))
    assert made == [] and np.array_equal(model.embedding, first.embedding)


def test_static_bad_inputs_exit_2(runs, tiny_bert, tmp_path, monkeypatch):
    (tmp_path / "notes").mkdir()
    r = distill_from_teacher(runs, f"static:{tmp_path / 'notes'}", *STATIC)
    assert_one_line_error(r, 2, "not a model directory")
    assert_one_line_error(distill_from_teacher(runs, "static:", *STATIC), 2, "static: needs an encoder")
    r = distill_from_teacher(runs, f"static:{tiny_bert}", *STATIC, "--student-layers", "2")
    assert_one_line_error(r, 2, "static student has no layers")
    # A teacher whose labels are not the data's.
    other = tmp_path / "other.csv"
    other.write_text("text,label\nplay jazz,play_music\nbook a flight,book_flight\nset alarm,set_alarm\n")
    student = f"static:{tiny_bert}"
    r = run_cli("distill", "--dataset", other, "--runs-dir", runs, "--teacher", "teacher", "--student", student)
    assert_one_line_error(r, 2, "unknown to the teacher teacher", "book_flight")
    block_import(monkeypatch, "model2vec")
    r = distill_from_teacher(runs, f"static:{tiny_bert}", *STATIC)
    assert_one_line_error(r, 2, "pip install 'distill-cli[static]'")
    assert not (runs / "static").exists() and not list(Path("runs").glob("*.partial"))


def test_a_study_searches_a_static_student(runs, tiny_bert, tmp_path):
    """`distill search` trains static students as `distill` does (the Trainer told where its labels are)."""
    import yaml

    config = tmp_path / "s.yaml"
    config.write_text(yaml.safe_dump({"static_dims": 16, "batch_size": 32, "search": {"epochs": [1, 2]}}))
    flags = ("--config", config, "--runs-dir", runs, "--teacher", "teacher", "--student", f"static:{tiny_bert}")
    r = run_cli("search", "--dataset", "demo-intents", *flags, "--name", "st-study", "--trials", "1", "--json")
    assert r.code == 0, r.stderr
    assert r.json["trials"]["complete"] == 1 and r.json["trials"]["fail"] == 0 and "failed" not in r.stderr
    # The default learning-rate range is a static student's, not a transformer's.
    assert 1e-4 <= r.json["best"]["params"]["learning_rate"] <= 1e-2
    best = runs / "st-study" / "best"
    assert json.loads((best / "run.json").read_text())["student"]["pooling"] == "static"
    assert (best / "head.safetensors").is_file()
    # A layer range means nothing to a static student: refused before any compute.
    config.write_text(yaml.safe_dump({"search": {"epochs": [1, 2], "student_layers": [1, 2]}}))
    r = run_cli("search", "--dataset", "demo-intents", *flags, "--name", "layers", "--trials", "1")
    assert_one_line_error(r, 2, "search.student_layers: a static student has no layers")
    assert not (runs / "layers").exists()


def test_a_truncated_static_student_is_named(static_run, tmp_path):
    copy = tmp_path / "st"
    shutil.copytree(static_run, copy)
    head = copy / "head.safetensors"
    head.write_bytes(head.read_bytes()[:-10])
    for command in (("predict", copy, "set an alarm"), ("evaluate", copy, "--latency-runs", "1")):
        assert_one_line_error(run_cli(*command), 2, f"{head} is damaged: it is truncated")
