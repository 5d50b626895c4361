"""Every kind of teacher trains a student: a run folder (tests elsewhere), an exported ONNX folder, an
ensemble (``--teacher a --teacher b``), a file of labels (``test_soft_labels.py``). An ensemble teaches the
mean of its members' cached logits: the same student as a file holding that mean."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import TRAIN_FLAGS, assert_one_line_error, run_cli
from test_soft_labels import STUDENT, student_logits, write_jsonl

from distill_cli.training.teachers import ensemble_logits


def distill(runs: Path, name: str, *teacher: str):
    return run_cli("distill", *TRAIN_FLAGS, "--runs-dir", runs, *teacher, "--student", "teacher", *STUDENT,
                   "--name", name)  # fmt: skip


def cache_entries() -> list[Path]:
    return sorted((Path.cwd() / "cache" / "teacher-logits").glob("*.safetensors"))


def test_an_ensemble_teaches_the_mean_of_its_members(runs, tmp_path):
    import datasets
    from safetensors.torch import load_file

    r = distill(runs, "pair", "--teacher", "teacher", "--teacher", "student")
    assert r.code == 0, r.stderr
    record = json.loads((runs / "pair" / "run.json").read_text())
    assert record["teacher"]["members"] == ["teacher", "student"] and record["teacher"]["ensemble"] == "logits"
    entries = [load_file(p)["logits"] for p in cache_entries()]
    assert len(entries) == 2  # each member labelled once, cached on its own
    mean = ensemble_logits(entries, "logits")
    assert torch.allclose(mean, (entries[0] + entries[1]) / 2, atol=1e-6)
    texts = list(datasets.load_from_disk(record["dataset"]["path"])["train"]["text"])
    rows = [{"text": t, "logits": dict(zip(record["labels"], row))} for t, row in zip(texts, mean.tolist())]
    r = distill(runs, "from-mean", "--teacher-labels", write_jsonl(tmp_path / "mean.jsonl", rows))
    assert r.code == 0, r.stderr
    a, b = student_logits(runs / "pair", texts[:10]), student_logits(runs / "from-mean", texts[:10])
    assert (a - b).abs().max().item() < 1e-5

    r = distill(runs, "pair-probs", "--teacher", "teacher", "--teacher", "student", "--teacher-ensemble", "probs")
    assert r.code == 0, r.stderr
    assert len(cache_entries()) == 2  # the members' entries reused


def test_the_mean_of_probabilities_is_a_distribution():
    members = [torch.randn(4, 6), torch.randn(4, 6)]
    probs = ensemble_logits(members, "probs").exp()
    assert torch.allclose(probs.sum(-1), torch.ones(4), atol=1e-6)
    expected = (members[0].softmax(-1) + members[1].softmax(-1)) / 2
    assert torch.allclose(probs, expected, atol=1e-6)
    confident = ensemble_logits([torch.tensor([[0.0, 200.0]]), torch.tensor([[0.0, 300.0]])], "probs")
    assert torch.isfinite(confident).all()  # a probability that underflows is not log 0: the row stays taught


def test_an_exported_onnx_folder_teaches(runs, tmp_path):
    onnx = tmp_path / "teacher-onnx"
    assert run_cli("export", "teacher", "--runs-dir", runs, "--output", onnx, "--max-accuracy-drop", "100").code == 0
    r = distill(runs, "from-onnx", "--teacher", str(onnx))
    assert r.code == 0, r.stderr
    torch_teacher = distill(runs, "from-torch", "--teacher", "teacher")
    assert torch_teacher.code == 0, torch_teacher.stderr
    assert len(cache_entries()) == 2  # the graph is a teacher of its own: its own cache entry
    a, b = (load_entry(p) for p in cache_entries())
    assert (a - b).abs().max().item() < 1e-4  # the fp32 graph labels as its PyTorch parent does
    assert json.loads((runs / "from-onnx" / "run.json").read_text())["teacher"]["location"] == str(onnx)


def load_entry(path: Path) -> torch.Tensor:
    from safetensors.torch import load_file

    return load_file(path)["logits"]


def test_ensemble_refusals_before_any_compute(runs):
    reordered = runs / "reordered"
    shutil.copytree(runs / "teacher", reordered)
    config = json.loads((reordered / "config.json").read_text())
    names = [config["id2label"][str(i)] for i in range(len(config["id2label"]))][::-1]
    config["id2label"] = {str(i): n for i, n in enumerate(names)}
    config["label2id"] = {n: i for i, n in enumerate(names)}
    (reordered / "config.json").write_text(json.dumps(config))
    record = json.loads((reordered / "run.json").read_text())
    record["labels"] = names
    (reordered / "run.json").write_text(json.dumps(record))
    r = distill(runs, "bad", "--teacher", "teacher", "--teacher", "reordered")
    assert_one_line_error(r, 2, "teacher reordered", "same order")
    online = distill(runs, "bad", "--teacher", "teacher", "--teacher", "student", "--teacher-mode", "online")
    assert_one_line_error(online, 2, "ensemble", "online")
    assert not (runs / "bad").exists()


@pytest.mark.parametrize(
    "value, teachers, teacher",
    [(["a"], ["a"], "a"), (["a", "b"], ["a", "b"], ["a", "b"]), ([], [], None), ("a", ["a"], "a"), (None, [], None)],
)
def test_one_teacher_is_a_name_and_several_a_list(value, teachers, teacher):
    from distill_cli.config import Config

    cfg = Config(teacher=value)
    assert (cfg.teachers, cfg.teacher, cfg.lead_teacher) == (teachers, teacher, teachers[0] if teachers else None)


def test_every_kind_answers_through_one_interface(runs, tmp_path):
    """``teacher_from`` makes the kind the config names; each gives logits over the run's labels for texts, and
    an identity that follows what it answers (weights, file contents), not where it was named from."""
    from distill_cli.config import load_config
    from distill_cli.training.teachers import Ensemble, LabelFile, ModelTeacher, teacher_from

    def teacher(**settings):
        return teacher_from(load_config(None, "distill", {"cache_dir": str(tmp_path / "cache"), **settings}))

    one, pair = teacher(teacher=str(runs / "teacher")), teacher(teacher=[str(runs / "teacher"), str(runs / "student")])
    assert isinstance(one, ModelTeacher) and isinstance(pair, Ensemble)
    texts, labels = ["what is my balance", "book a table for two", "what is my balance"], one.labels
    alone = one.targets(load_config(None, "distill", {"cache_dir": str(tmp_path / "cache")}), texts, labels)
    assert alone.logits.shape == (3, len(labels)) and not alone.cache_reused
    cfg = load_config(None, "distill", {"cache_dir": str(tmp_path / "cache")})
    both = pair.targets(cfg, texts, labels)
    member = pair.members[1].targets(cfg, texts, labels).logits
    assert both.cache_reused is False  # the second member was labelled now
    assert torch.allclose(both.logits, (alone.logits + member) / 2, atol=1e-6)
    assert one.targets(cfg, texts, labels).cache_reused  # read back, not computed again
    copy = tmp_path / "copy"
    shutil.copytree(runs / "teacher", copy)
    assert teacher(teacher=str(copy)).identity() == one.identity() != pair.identity()
    assert teacher(teacher=[str(runs / "teacher"), str(runs / "student")], teacher_ensemble="probs").identity() != (
        pair.identity()
    )

    rows = [{"text": "what is my balance", "label": labels[0]}]
    made = teacher(teacher_labels=str(write_jsonl(tmp_path / "labels.jsonl", rows)))
    assert isinstance(made, LabelFile) and made.labels is None  # it answers over the run's labels
    found = made.targets(cfg, texts, labels)
    assert found.covered == 2 and int(found.logits[0].argmax()) == 0 and torch.isnan(found.logits[1]).all()
    before = made.identity()
    write_jsonl(tmp_path / "labels.jsonl", [{**rows[0], "label": labels[1]}])
    assert made.identity() != before
