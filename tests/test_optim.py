"""Layer-wise learning-rate decay (``layer_decay``): each encoder layer learns at the factor times the rate of
the one above, the head at the run's rate; the body moves less in a real run; a static student refuses it."""

from __future__ import annotations

import pytest
from conftest import TRAIN_FLAGS, assert_one_line_error, run_cli

from distill_cli.training.optim import depths, layer_groups


def test_rates_fall_by_the_factor_from_the_head_down(tiny_bert):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    layers = model.config.num_hidden_layers
    params = dict(model.named_parameters())
    depth, found_layers = depths(model)
    assert found_layers == layers
    assert depth[id(params["bert.embeddings.word_embeddings.weight"])] == 0
    assert depth[id(params["bert.encoder.layer.0.attention.self.query.weight"])] == 1
    assert id(params["classifier.weight"]) not in depth  # above the layers: depth layers + 1
    decayed = {n for n, _ in model.named_parameters() if not n.endswith("bias")}
    groups = layer_groups(model, 1e-3, 0.5, 0.01, decayed)
    rate = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert rate[id(params["classifier.weight"])] == pytest.approx(1e-3)
    assert rate[id(params[f"bert.encoder.layer.{layers - 1}.output.dense.weight"])] == pytest.approx(5e-4)
    assert rate[id(params["bert.embeddings.word_embeddings.weight"])] == pytest.approx(1e-3 * 0.5 ** (layers + 1))
    assert sum(len(g["params"]) for g in groups) == len(params)  # every parameter once
    assert all(g["weight_decay"] == 0.0 for g in groups for p in g["params"] if p is params["classifier.bias"])


def test_a_run_with_layer_decay_moves_the_embeddings_less(tiny_bert, tmp_path):
    from safetensors.torch import load_file

    start = load_file(str(tiny_bert / "model.safetensors"))
    key = next(k for k in start if k.endswith("word_embeddings.weight"))
    moved = {}
    for decay in ("1", "0.1"):
        r = run_cli("finetune", *TRAIN_FLAGS, "--student", tiny_bert, "--epochs", "1", "--head-init", "random",
                    "--layer-decay", decay, "--runs-dir", tmp_path / "runs", "--name", f"decay-{decay}")  # fmt: skip
        assert r.code == 0, r.stderr
        trained = load_file(str(tmp_path / "runs" / f"decay-{decay}" / "model.safetensors"))
        found = next(k for k in trained if k.endswith("word_embeddings.weight"))
        moved[decay] = (trained[found] - start[key]).abs().sum().item()
    assert 0 < moved["0.1"] < moved["1"] / 10


def test_a_static_student_has_no_layers_to_decay(tmp_path):
    r = run_cli("finetune", "--dataset", "demo-intents", "--student", "static:minilm-l6", "--layer-decay", "0.9",
                "--runs-dir", tmp_path / "runs")  # fmt: skip
    assert_one_line_error(r, 2, "--layer-decay")
