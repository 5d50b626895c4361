"""The supervised contrastive term (``--contrastive-weight``) and the same-label pair batches it trains on."""

from __future__ import annotations

import json

import torch
from conftest import DEMO, TRAIN_FLAGS, run_cli

from distill_cli.training.loss import contrastive_loss
from distill_cli.training.trainer import LabelPairSampler


def test_the_loss_is_least_when_each_label_is_one_tight_cluster_apart_from_the_others():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    clustered = torch.eye(3).repeat_interleave(2, dim=0)  # each label on its own axis
    mixed = torch.eye(3).repeat(2, 1)  # each label's two rows on two different axes
    tight, loose = contrastive_loss(clustered, labels).item(), contrastive_loss(mixed, labels).item()
    assert tight < loose
    # The floor of this batch: each row's positive is its twin, the 4 others at cosine 0 (temperature 0.1).
    floor = -torch.log(torch.tensor(torch.e**10 / (torch.e**10 + 4))).item()
    assert abs(tight - floor) < 1e-4
    assert contrastive_loss(3.0 * clustered, labels).item() == torch.tensor(tight).item()  # directions only


def test_rows_without_a_positive_and_unlabelled_rows_add_nothing():
    torch.manual_seed(0)
    features = torch.randn(5, 8, requires_grad=True)
    assert contrastive_loss(features, torch.tensor([0, 1, 2, 3, 4])).item() == 0.0  # no label twice
    assert contrastive_loss(features, torch.tensor([0, 1, -100, -100, 2])).item() == 0.0  # unlabelled twice
    with_unlabelled = contrastive_loss(features, torch.tensor([0, 0, -100, 1, 1]))
    without = contrastive_loss(features[[0, 1, 3, 4]], torch.tensor([0, 0, 1, 1]))
    assert abs(with_unlabelled.item() - without.item()) < 1e-6  # an unlabelled row is no negative either
    with_unlabelled.backward()
    assert features.grad[2].abs().sum() == 0 and features.grad[0].abs().sum() > 0


def test_the_sampler_pairs_rows_of_one_label_and_gives_every_row_once_an_epoch():
    labels = [0] * 5 + [1] * 4 + [2] * 2 + [-100] * 3
    sampler = LabelPairSampler(labels, seed=42)
    order = list(sampler)
    assert sorted(order) == list(range(len(labels)))
    pairs = [order[i : i + 2] for i in range(0, len(order), 2)]
    same = sum(1 for p in pairs if len(p) == 2 and labels[p[0]] == labels[p[1]] >= 0)
    assert same >= 4  # 2 pairs of label 0, 2 of label 1, 1 of label 2, give or take the singles' offsets
    assert list(sampler) == order  # the same epoch, the same order (a resumed run replays it)
    sampler.set_epoch(1)
    assert list(sampler) != order


def test_its_gradient_reaches_the_body(tiny_distilbert):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from distill_cli.training.trainer import DistillationTrainer, DistillationTrainingArguments

    model = AutoModelForSequenceClassification.from_pretrained(tiny_distilbert)
    tokenizer = AutoTokenizer.from_pretrained(tiny_distilbert)
    args = DistillationTrainingArguments(output_dir="out", alpha=1.0, contrastive_weight=1.0, use_cpu=True,
                                         report_to=[])  # fmt: skip
    trainer = DistillationTrainer(model=model, args=args, processing_class=tokenizer)
    batch = dict(tokenizer(["book a table", "reserve a table", "play jazz", "play rock"], padding=True,
                           return_tensors="pt"))  # fmt: skip
    batch["labels"] = torch.tensor([0, 0, 1, 1])
    model.train()
    with_term = trainer.compute_loss(model, batch)
    with_term.backward()
    body = model.distilbert.transformer.layer[0].attention.q_lin.weight
    assert body.grad is not None and body.grad.abs().sum() > 0
    assert with_term.item() > trainer.compute_loss(model.eval(), batch).item()  # evaluation: the CE alone


def test_a_few_shot_run_trains_with_it_and_records_it(tiny_bert, tmp_path):
    data = json.loads(DEMO.read_text())
    few = {"train": [], "test": data["test"]}
    seen: dict[str, int] = {}
    for text, label in data["train"]:
        if seen.get(label, 0) < 5:
            few["train"].append([text, label])
            seen[label] = seen.get(label, 0) + 1
    source = tmp_path / "few.json"
    source.write_text(json.dumps(few))
    flags = [f for f in TRAIN_FLAGS if f not in ("--dataset", "demo-intents")]
    r = run_cli("finetune", "--dataset", source, "--student", tiny_bert, *flags, "--epochs", "2",
                "--contrastive-weight", "1", "--name", "few", "--json")  # fmt: skip
    assert r.code == 0, r.stderr
    record = json.loads((tmp_path / "runs" / "few" / "run.json").read_text())
    assert record["config"]["contrastive_weight"] == 1.0
    assert all(e["loss"] > 0 for e in r.json["epochs"])
