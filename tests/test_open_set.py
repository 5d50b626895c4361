"""Open-set data: out-of-scope queries in validation and test only, none to train on (the out-of-domain
literature's setting). The model has no out-of-scope output; a rule chosen on validation answers it."""

from __future__ import annotations

import json

import pytest
from conftest import DEMO, TRAIN_FLAGS, assert_one_line_error, distill_from_teacher, run_cli


def demo_without(tmp_path, *drop: str):
    data = json.loads(DEMO.read_text())
    path = tmp_path / f"demo-without-{'-'.join(drop)}.json"
    path.write_text(json.dumps({k: v for k, v in data.items() if k not in drop}))
    return path


@pytest.fixture
def open_set(tmp_path):
    return demo_without(tmp_path, "oos_train")


def test_prepare_says_which_setting_it_found(tiny_bert, open_set, tmp_path):
    r = run_cli("prepare", "--dataset", open_set, "--student", tiny_bert, "--json")
    assert r.code == 0, r.stderr
    assert r.json["oos_setting"] == "open-set" and r.json["labels"][-1] == "oos"
    assert "out of scope: open-set: 'oos' is in validation or test only" in r.stderr
    for data, setting in ((DEMO, "out-of-scope trained"), (demo_without(tmp_path, *[k for k in json.loads(
            DEMO.read_text()) if k.startswith("oos_")]), "none")):  # fmt: skip
        r = run_cli("prepare", "--dataset", data, "--student", tiny_bert, "--json")
        assert r.code == 0 and r.json["oos_setting"] == setting, r.stderr
    # An oos_label that names an intent of train is that intent, not open-set; a label seen only outside train
    # that is not the out-of-scope label is still refused.
    r = run_cli("prepare", "--dataset", open_set, "--student", tiny_bert, "--oos-label", "weather", "--json")
    assert_one_line_error(r, 2, "label 'oos'", "never occurs in train")


def test_a_model_of_open_set_data_answers_out_of_scope_by_its_rule(tiny_bert, tiny_distilbert, open_set, tmp_path):
    flags = (*TRAIN_FLAGS[2:], "--dataset", open_set)
    r = run_cli("finetune", *flags, "--student", tiny_bert, "--epochs", "4", "--name", "teacher", "--json")
    assert r.code == 0, r.stderr
    run = tmp_path / "runs" / "teacher"
    labels = json.loads((run / "config.json").read_text())["id2label"].values()
    assert "oos" not in labels and len(labels) == 10  # no out-of-scope output
    record = json.loads((run / "run.json").read_text())
    rule = record["oos_rule"]
    assert record["labels"] == list(labels) and rule["oos_share"] == 0.18 and rule["reject_share"] is None
    # The score was chosen on validation by AUROC among the four (knn is asked for by name), and the feature
    # statistics were saved.
    assert set(rule["score_auroc"]) == {"max_softmax", "energy", "mahalanobis", "energy+mahalanobis"}
    assert rule["score"] == max(rule["score_auroc"], key=rule["score_auroc"].get)
    assert (run / "oos_features.safetensors").is_file()
    texts = [t for t, _ in json.loads(DEMO.read_text())["oos_test"]] + ["play some jazz", "set an alarm"]
    answers = [json.loads(line) for line in run_cli("predict", "teacher", *texts, "--json").stdout.splitlines()]
    for a in answers:
        assert a["out_of_scope"] == (a["confidence"] < rule["threshold"]) == (a["intent"] == "oos")
    e = run_cli("evaluate", "teacher", "--latency-runs", "2", "--json")
    assert e.code == 0, e.stderr
    m = e.json["models"][0]
    assert m["oos_recall"] == 0.0 and m["oos_rule"]["oos_recall"] is not None  # argmax never says oos
    assert set(m["separation"]) == set(rule["score_auroc"]) and m["oos_rule"]["score"] == rule["score"]
    assert all(0.0 <= s["auroc"] <= 1.0 for s in m["separation"].values())
    # A student distilled from it: the same labels, a rule of its own.
    d = distill_from_teacher(tmp_path / "runs", tiny_distilbert, "--dataset", open_set, "--epochs", "2",
                             "--name", "s")  # fmt: skip
    assert d.code == 0, d.stderr
    student = json.loads((tmp_path / "runs" / "s" / "run.json").read_text())
    assert student["labels"] == record["labels"] and student["oos_rule"]["oos_share"] == 0.18


def test_a_knn_rule_keeps_the_training_vectors_and_predict_applies_it(tiny_bert, open_set, tmp_path):
    from distill_cli.oos_scores import FeatureStats

    flags = (*TRAIN_FLAGS[2:], "--dataset", open_set, "--student", tiny_bert, "--epochs", "2")
    r = run_cli("finetune", *flags, "--oos-score", "knn", "--name", "k")
    assert r.code == 0, r.stderr
    run = tmp_path / "runs" / "k"
    rule = json.loads((run / "run.json").read_text())["oos_rule"]
    assert rule["score"] == "knn" and rule["score_auroc"] == {}  # asked for: nothing chosen
    stats = FeatureStats.load(run)
    train_rows = len(json.loads(DEMO.read_text())["train"])
    assert stats.bank.shape[0] == train_rows and 1 <= stats.k <= 10
    texts = [t for t, _ in json.loads(DEMO.read_text())["oos_test"]] + ["play some jazz", "set an alarm"]
    answers = [json.loads(line) for line in run_cli("predict", "k", *texts, "--json").stdout.splitlines()]
    assert all(-1.0 <= a["confidence"] <= 1.0 for a in answers)  # a cosine similarity
    for a in answers:
        assert a["out_of_scope"] == (a["confidence"] < rule["threshold"]) == (a["intent"] == "oos")
    # Another score: the vectors are not kept.
    r = run_cli("finetune", *flags, "--oos-score", "energy+mahalanobis", "--name", "m")
    assert r.code == 0, r.stderr
    assert FeatureStats.load(tmp_path / "runs" / "m").bank is None


def test_out_of_scope_queries_in_test_alone(tiny_bert, tmp_path):
    test_only = demo_without(tmp_path, "oos_train", "oos_val")
    flags = (*TRAIN_FLAGS[2:], "--dataset", test_only, "--student", tiny_bert, "--epochs", "1")
    r = run_cli("finetune", *flags, "--name", "f")
    assert r.code == 0, r.stderr
    assert json.loads((tmp_path / "runs" / "f" / "run.json").read_text())["oos_rule"]["reject_share"] == 0.05
    r = run_cli("finetune", *flags, "--name", "g", "--oos-rule", "threshold")
    assert_one_line_error(r, 2, "needs an out-of-scope label", "add out-of-scope queries to validation", "oos_reject")
