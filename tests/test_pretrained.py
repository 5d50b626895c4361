"""Keeping what the pretrained encoder knows: pooling that matches the checkpoint, probe-then-fine-tune,
the out-of-scope rule chosen on validation, and `distill predict`."""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest
import torch
from conftest import TRAIN_FLAGS, assert_one_line_error, run_cli, working_in

from distill_cli.config import Config


def _finetune(student, name, *extra):
    return run_cli("finetune", *TRAIN_FLAGS, "--student", student, "--epochs", "3", "--name", name, "--json", *extra)


@pytest.fixture(scope="module")
def mean_run(tiny_st, tmp_path_factory):
    """A run fine-tuned from the tiny sentence-transformers folder with the defaults (pooling auto, probe)."""
    root = tmp_path_factory.mktemp("mean-run")
    with working_in(root):
        r = _finetune(tiny_st, "mean")
        assert r.code == 0, r.stderr
    return root / "runs" / "mean"


def test_auto_pooling_reads_the_sentence_transformers_files(mean_run, tiny_bert, tiny_st):
    from distill_cli.modeling import ModelRef, pooling_of
    from distill_cli.runs import RunRecord

    cfg = Config()
    config = json.loads((mean_run / "config.json").read_text())
    assert config["distill_pooling"] == "mean"
    record = RunRecord.read(mean_run)
    assert record.student.pooling == "mean" and record.student.head_init == "probe"
    # auto: mean where 1_Pooling says so, the architecture's [CLS] head elsewhere; a setting overrides it.
    from transformers import AutoConfig

    assert pooling_of(ModelRef("st", str(tiny_st), "dir"), cfg, AutoConfig.from_pretrained(tiny_st)) == "mean"
    assert pooling_of(ModelRef("b", str(tiny_bert), "dir"), cfg, AutoConfig.from_pretrained(tiny_bert)) == "cls"
    forced = cfg.model_copy(update={"pooling": "cls"})
    assert pooling_of(ModelRef("st", str(tiny_st), "dir"), forced, AutoConfig.from_pretrained(tiny_st)) == "cls"


def test_a_mean_model_loads_back_with_identical_logits_and_in_the_sentence_transformers_layout(mean_run):
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    from distill_cli.modeling import load_for_inference, resolve_model
    from distill_cli.pooling import MeanPoolingClassifier

    cfg = Config()
    model = load_for_inference(resolve_model(str(mean_run), cfg), cfg)
    assert isinstance(model, MeanPoolingClassifier) and not model.training
    tok = AutoTokenizer.from_pretrained(mean_run)
    batch = tok(["play some jazz", "what is the weather like tomorrow in paris"], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
        # What SentenceTransformer(folder) computes from modules.json: the body at the root (AutoModel),
        # the mean of the token vectors (1_Pooling), then 2_Dense with identity activation.
        hidden = AutoModel.from_pretrained(mean_run)(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    dense = load_file(str(mean_run / "2_Dense" / "model.safetensors"))
    assert torch.allclose(pooled @ dense["linear.weight"].T + dense["linear.bias"], logits, atol=1e-5)
    modules = json.loads((mean_run / "modules.json").read_text())
    assert [m["path"] for m in modules] == ["", "1_Pooling", "2_Dense"]
    assert json.loads((mean_run / "1_Pooling" / "config.json").read_text())["pooling_mode_mean_tokens"] is True
    # Evaluate, cut and distill it like any run.
    r = run_cli("evaluate", "mean", "--runs-dir", mean_run.parent, "--latency-runs", "2", "--json")
    assert r.code == 0, r.stderr
    record = json.loads((mean_run / "run.json").read_text())
    assert r.json["models"][0]["oos_rule"]["threshold"] == record["oos_rule"]["threshold"]


def test_probe_fits_logistic_regression_and_starts_lower_than_a_random_head(tiny_st, tmp_path):
    from sklearn.linear_model import LogisticRegression
    from transformers import AutoTokenizer

    from distill_cli.data.prepared import prepare
    from distill_cli.modeling import ModelRef, load_classifier
    from distill_cli.training.head import PROBE_C, fit_head, head_features, probe

    cfg = Config(dataset="demo-intents", max_length=24)
    tok = AutoTokenizer.from_pretrained(tiny_st)
    prepared = prepare(cfg, tok, str(tiny_st))
    labels, train, val = prepared.label_names, prepared.datasets["train"], prepared.datasets["validation"]
    ref = ModelRef("st", str(tiny_st), "dir")

    def validation_loss(model):
        enc = tok(list(val["text"]), padding=True, return_tensors="pt")
        with torch.no_grad():
            return torch.nn.functional.cross_entropy(model.eval()(**enc).logits, torch.tensor(val["label"])).item()

    torch.manual_seed(0)
    random_head = load_classifier(ref, cfg, labels)
    probed = load_classifier(ref, cfg, labels)
    features = head_features(probed, tok, list(train["text"]), 24)
    probe(probed, features, torch.tensor(train["label"]))
    assert validation_loss(probed) < validation_loss(random_head) - 0.1
    # The probe is multinomial logistic regression with C = PROBE_C: scikit-learn agrees with it.
    weight, bias = fit_head(features, torch.tensor(train["label"]), len(labels))
    sk = LogisticRegression(C=PROBE_C, max_iter=2000, tol=1e-8).fit(features.numpy(), train["label"])
    ours = (features @ weight.T + bias).argmax(-1).numpy()
    assert (ours == sk.predict(features.numpy())).mean() > 0.97


def test_the_threshold_with_a_known_optimum_is_found():
    from distill_cli.oos import choose_threshold, decide

    rng = np.random.default_rng(0)
    # 3 classes, 2 = out of scope. In-scope queries: confident (top 0.6-0.95); out-of-scope: unsure (0.35-0.5).
    n_in, n_oos = 300, 20
    top = np.concatenate([rng.uniform(0.6, 0.95, n_in), rng.uniform(0.35, 0.5, n_oos)])
    probs = np.stack([top, (1 - top) * 0.7, (1 - top) * 0.3], axis=1)
    y = np.array([0] * n_in + [2] * n_oos)
    top_prob, preds = probs.max(-1), probs.argmax(-1)
    rule = choose_threshold(top_prob, preds, y, oos_id=2, oos_label="oos", oos_share=0.2)
    assert 0.5 < rule.threshold <= 0.6  # every threshold there separates the two perfectly
    assert (decide(preds, top_prob, 2, rule.threshold) == y).all()
    assert len(rule.curve) == 100 and rule.curve[0] == (0.0, 1.0, 0.0)
    # The expected share of out-of-scope traffic moves the choice when the two overlap.
    top[:30] = 0.45  # a tenth of the in-scope queries as unsure as the out-of-scope ones
    probs = np.stack([top, (1 - top) * 0.7, (1 - top) * 0.3], axis=1)
    rare = choose_threshold(probs.max(-1), preds, y, 2, "oos", oos_share=0.01).threshold
    common = choose_threshold(probs.max(-1), preds, y, 2, "oos", oos_share=0.6).threshold
    assert rare <= 0.45 and common > 0.5


def test_the_rule_is_stored_and_evaluate_and_predict_apply_it(runs, tmp_path, monkeypatch):
    from distill_cli.runs import RunRecord

    record = RunRecord.read(runs / "student")
    rule = record.oos_rule
    assert rule is not None and rule.oos_label == "oos" and rule.oos_share == 0.18
    assert rule.score == max(rule.score_auroc, key=rule.score_auroc.get)  # chosen on validation
    # The curve starts at argmax: its lowest threshold scores what the last validation pass scored (same queries, same
    # labels, whatever order the Trainer fed them in).
    assert rule.curve[0][1:] == pytest.approx(
        (record.metrics["in_scope_accuracy"], record.metrics["oos_recall"]), abs=1e-4
    )
    plot = tmp_path / "p.png"
    r = run_cli("evaluate", "teacher", "student", "--runs-dir", runs, "--latency-runs", "2", "--json", "--plot", plot)
    assert r.code == 0, r.stderr
    student = r.json["models"][1]
    assert student["oos_rule"]["threshold"] == rule.threshold
    assert "with OOS rule" in r.stderr and "OOS threshold (validation)" in r.stderr
    # predict, on the same test texts, answers what evaluate counted.
    from datasets import load_from_disk

    test = load_from_disk(RunRecord.read(runs / "student").dataset.path)["test"]
    names = test.features["label"].names
    (tmp_path / "texts.txt").write_text("\n".join(test["text"]) + "\n\n")
    p = run_cli("predict", "student", "--runs-dir", runs, "--file", tmp_path / "texts.txt", "--json", "--top-k", "3")
    assert p.code == 0, p.stderr
    answers = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(answers) == len(test) and all(len(a["top_k"]) == 3 for a in answers)
    accuracy = np.mean([a["intent"] == names[y] for a, y in zip(answers, test["label"])])
    assert accuracy == pytest.approx(student["oos_rule"]["accuracy"])
    for a in answers:
        assert a["out_of_scope"] == (a["confidence"] < rule.threshold or a["top_k"][0]["intent"] == "oos")
        assert (a["intent"] == "oos") == a["out_of_scope"]
    # stdin, and the table for people.
    monkeypatch.setattr(sys, "stdin", io.StringIO("play some jazz\nbook me a table for two\n"))
    s = run_cli("predict", "student", "--runs-dir", runs, "--json")
    assert [json.loads(line)["text"] for line in s.stdout.splitlines()] == ["play some jazz", "book me a table for two"]
    t = run_cli("predict", "student", "play some jazz", "--runs-dir", runs)
    assert t.code == 0 and t.stdout == "" and "play some jazz" in t.stderr and "out of scope" in t.stderr


def test_bad_inputs_for_the_rule_and_predict(runs, tmp_path, monkeypatch):
    assert_one_line_error(_finetune("x", "a", "--oos-share", "1.5"), 2, "oos_share")
    assert_one_line_error(_finetune("x", "a", "--oos-share", "0"), 2, "oos_share")
    data = tmp_path / "no-oos.csv"
    data.write_text("text,label\n" + "".join(f"play song {i},music\nset alarm {i},alarm\n" for i in range(10)))
    flags = ("--oos-rule", "threshold", "--name", "t", "--max-length", "24")
    r = run_cli("finetune", "--dataset", data, "--student", runs / "teacher", *flags)
    assert_one_line_error(r, 2, "needs an out-of-scope label", "--oos-label")
    assert not (tmp_path / "runs" / "t").exists()
    (tmp_path / "notes").mkdir()
    assert_one_line_error(run_cli("predict", tmp_path / "notes", "hello"), 2, "not a model directory")
    assert_one_line_error(run_cli("predict", "student", "--runs-dir", runs, "--file", tmp_path / "nope.txt"), 2, "nope")
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n  \n"))
    assert_one_line_error(run_cli("predict", "student", "--runs-dir", runs), 2, "no text")


def test_push_dry_run_of_a_mean_run_lists_its_modules_and_the_rule(mean_run):
    r = run_cli("push", "mean", "--runs-dir", mean_run.parent, "--repo-id", "me/mean", "--dry-run", "--json")
    assert r.code == 0, r.stderr
    paths = {f["path"] for f in r.json["files"]}
    assert {"modules.json", "1_Pooling/config.json", "2_Dense/config.json", "2_Dense/model.safetensors"} <= paths
    assert not [p for p in paths if p.endswith((".bin", ".pt", ".pkl"))]
    card = r.json["card"]
    threshold = json.loads((mean_run / "run.json").read_text())["oos_rule"]["threshold"]
    assert 'SentenceTransformer("me/mean")' in card and f"confidence < {threshold}" in card
    assert "library_name: sentence-transformers" in card
