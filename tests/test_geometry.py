"""The sentence-geometry loss: the student's pooled vector, through a learned projection, pointed where the
teacher's points (``--feature-weight``)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import distill_from_teacher

from distill_cli.training.loss import geometry_loss


def test_the_geometry_loss_is_zero_when_the_projected_vector_points_as_the_teachers():
    torch.manual_seed(0)
    teacher = torch.randn(4, 6)
    assert geometry_loss(teacher.clone(), teacher).item() < 1e-6
    assert geometry_loss(3.0 * teacher, teacher).item() < 1e-6  # the direction, not the length
    assert abs(geometry_loss(-teacher, teacher).item() - 2.0) < 1e-6
    assert 0.0 < geometry_loss(torch.randn(4, 6), teacher).item() < 2.0


def test_its_gradient_reaches_the_projection_and_the_student_body(tiny_distilbert):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from distill_cli.training.trainer import (
        PROJECTION,
        DistillationTrainer,
        DistillationTrainingArguments,
        add_projection,
    )

    model = AutoModelForSequenceClassification.from_pretrained(tiny_distilbert)  # 2 labels
    tokenizer = AutoTokenizer.from_pretrained(tiny_distilbert)
    add_projection(model, teacher_width=8)  # the teacher's width differs from the student's
    args = DistillationTrainingArguments(output_dir="out", alpha=1.0, feature_weight=1.0, use_cpu=True, report_to=[])
    trainer = DistillationTrainer(model=model, args=args, processing_class=tokenizer)
    batch = dict(tokenizer(["book a table", "play some jazz"], padding=True, return_tensors="pt"))
    batch.update(labels=torch.tensor([0, 1]), teacher_features=torch.randn(2, 8))
    model.train()
    trainer.compute_loss(model, batch).backward()
    projection = getattr(model, PROJECTION)
    assert projection.weight.grad is not None and projection.weight.grad.abs().sum() > 0
    body = model.distilbert.transformer.layer[0].attention.q_lin.weight
    assert body.grad is not None and body.grad.abs().sum() > 0
    # Without teacher features the loss is the cross-entropy alone: the projection gets no gradient.
    model.zero_grad()
    trainer.compute_loss(model, {k: v for k, v in batch.items() if k != "teacher_features"}).backward()
    assert projection.weight.grad is None or projection.weight.grad.abs().sum() == 0


def test_a_student_with_another_tokenizer_trains_with_it_and_saves_no_projection(runs, tiny_distilbert, tmp_path):
    from safetensors import safe_open

    flags = ("--epochs", "2", "--alpha", "0.5", "--cache-dir", tmp_path / "cache")
    plain = distill_from_teacher(runs, tiny_distilbert, *flags, "--name", "plain", "--json")
    geometry = distill_from_teacher(runs, tiny_distilbert, *flags, "--feature-weight", "1", "--name", "geo", "--json")
    assert plain.code == 0 and geometry.code == 0, geometry.stderr
    assert geometry.json["epochs"][0]["loss"] != plain.json["epochs"][0]["loss"] or \
        geometry.json["epochs"] != plain.json["epochs"]  # fmt: skip
    record = json.loads((runs / "geo" / "run.json").read_text())
    assert record["config"]["feature_weight"] == 1.0
    with safe_open(str(runs / "geo" / "model.safetensors"), "pt") as f:
        assert not [k for k in f.keys() if "projection" in k]  # a training-only layer
    # The teacher's pooled features are cached beside its logits, as wide as its head reads.
    entries = sorted((tmp_path / "cache" / "teacher-logits").glob("*.safetensors"))
    names = []
    for entry in entries:
        with safe_open(str(entry), "pt") as f:
            names += list(f.keys())
    assert sorted(names) == ["features", "logits"]
    again = distill_from_teacher(runs, tiny_distilbert, *flags, "--feature-weight", "1", "--name", "geo2", "--json")
    assert again.code == 0 and "teacher features" not in again.stderr  # read back, not computed
    assert again.json["epochs"] == geometry.json["epochs"]


def test_a_static_student_learns_the_teachers_geometry_and_saves_a_plain_pipeline(runs, tiny_bert, tmp_path):
    """The static student's sentence vector (the mean of its token vectors, what its head reads) is pulled
    towards the teacher's: the loss differs from the same run without it, and the saved pipeline holds the
    static table and head alone, not the training-only projection."""
    pytest.importorskip("model2vec")
    from safetensors import safe_open

    flags = ("--static-dims", "16", "--learning-rate", "1e-2", "--batch-size", "32", "--epochs", "2", "--augment", "0",
             "--alpha", "0.5", "--cache-dir", tmp_path / "cache")  # fmt: skip
    plain = distill_from_teacher(runs, f"static:{tiny_bert}", *flags, "--name", "s-plain", "--json")
    geometry = distill_from_teacher(runs, f"static:{tiny_bert}", *flags, "--feature-weight", "1", "--name", "s-geo",
                                    "--json")  # fmt: skip
    assert plain.code == 0 and geometry.code == 0, geometry.stderr
    assert [e["loss"] for e in geometry.json["epochs"]] != [e["loss"] for e in plain.json["epochs"]]
    for name in ("model.safetensors", "head.safetensors"):
        with safe_open(str(runs / "s-geo" / name), "np") as f:
            assert not [k for k in f.keys() if "projection" in k]
    from distill_cli.static import StaticClassifier

    model = StaticClassifier(runs / "s-geo")
    assert model(texts=["book a table"]).logits.shape == (1, model.config.num_labels)


def test_for_a_static_student_its_gradient_reaches_the_projection_and_the_token_vectors(tiny_bert):
    pytest.importorskip("model2vec")
    import numpy as np
    from model2vec import StaticModel
    from model2vec.train import StaticModelForClassification
    from tokenizers import Tokenizer

    from distill_cli.training.static_student import StaticStudent
    from distill_cli.training.trainer import (
        PROJECTION,
        DistillationTrainer,
        DistillationTrainingArguments,
        add_projection,
    )

    tokenizer = Tokenizer.from_file(str(tiny_bert / "tokenizer.json"))
    vectors = np.random.default_rng(0).normal(size=(tokenizer.get_vocab_size(), 8)).astype(np.float32)
    module = StaticModelForClassification.from_static_model(model=StaticModel(vectors, tokenizer), out_dim=2)
    student = StaticStudent(module, ["book", "play"])
    add_projection(student, teacher_width=6)  # from the mean static vector (8 wide) to the teacher's 6
    args = DistillationTrainingArguments(
        output_dir="out", alpha=1.0, feature_weight=1.0, use_cpu=True, report_to=[], label_names=["labels"]
    )
    trainer = DistillationTrainer(model=student, args=args)
    tokens = module.tokenize(["book a table", "play some jazz"])
    batch = {"ids": tokens.ids, "offsets": tokens.offsets, "lengths": tokens.lengths, "labels": torch.tensor([0, 1])}
    student.train()

    def gradients(inputs: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        student.zero_grad()
        trainer.compute_loss(student, inputs).backward()
        return module.embeddings.weight.grad.clone(), getattr(student, PROJECTION).weight.grad

    plain, none = gradients(batch)
    with_geometry, projected = gradients({**batch, "teacher_features": torch.randn(2, 6)})
    assert none is None or none.abs().sum() == 0  # without the teacher's vectors, no geometry term
    assert projected is not None and projected.abs().sum() > 0
    assert not torch.allclose(plain, with_geometry)  # the term moves the token vectors themselves


def test_the_geometry_loss_is_refused_where_it_cannot_work(runs):
    from conftest import TRAIN_FLAGS, assert_one_line_error, run_cli

    r = distill_from_teacher(runs, "teacher", "--feature-weight", "1", "--teacher-mode", "online")
    assert_one_line_error(r, 2, "--feature-weight needs distill")
    r = run_cli("finetune", *TRAIN_FLAGS, "--runs-dir", runs, "--student", "teacher", "--feature-weight", "1")
    assert r.code == 2 and "--feature-weight" in r.stderr
