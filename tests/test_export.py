"""`distill export`: ONNX graphs (fp32 and int8) checked against PyTorch, and exported folders in
`evaluate`, `predict` and `push`."""

from __future__ import annotations

import json
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from conftest import DEMO, TRAIN_FLAGS, assert_one_line_error, block_import, run_cli

TEXTS = ["play some jazz", "what is the weather like tomorrow in paris", "set an alarm", "tell me a joke please"]


def _logits(model, folder, texts=TEXTS):
    from transformers import AutoTokenizer

    enc = AutoTokenizer.from_pretrained(folder)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**enc).logits.numpy()


@pytest.mark.parametrize("body", ["tiny_bert", "tiny_st"])
def test_fp32_export_gives_the_same_logits_with_the_pooling_inside_the_graph(body, request, tmp_path):
    from distill_cli.config import Config
    from distill_cli.modeling import load_for_inference, resolve_model
    from distill_cli.onnx_model import OnnxClassifier

    student = request.getfixturevalue(body)
    r = run_cli("finetune", *TRAIN_FLAGS, "--student", student, "--epochs", "1", "--name", "m")
    assert r.code == 0, r.stderr
    e = run_cli("export", "m", "--output", tmp_path / "m-onnx", "--json")
    assert e.code == 0, e.stderr
    checks = e.json["checks"]["fp32"]
    assert checks["max_abs_logit_difference"] < 1e-4 and checks["argmax_agreement"] == 1.0 and checks["queries"] > 0
    pooling = json.loads((tmp_path / "runs" / "m" / "config.json").read_text()).get("distill_pooling", "cls")
    assert pooling == ("mean" if body == "tiny_st" else "cls")
    cfg = Config()
    torch_model = load_for_inference(resolve_model("m", cfg), cfg)
    graph = OnnxClassifier(tmp_path / "m-onnx")
    assert np.allclose(_logits(torch_model, tmp_path / "runs" / "m"), _logits(graph, tmp_path / "m-onnx"), atol=1e-4)
    exported = json.loads((tmp_path / "m-onnx" / "export.json").read_text())
    assert exported["parent"] == "m" and exported["quantize"] == "none"
    # The graph gives the pooled features too, and with the run's statistics (copied beside it) every
    # out-of-scope score is PyTorch's.
    from distill_cli.inference import batched_outputs
    from distill_cli.modeling import load_tokenizer
    from distill_cli.oos_scores import FEATURE_SCORES, FeatureStats, out_of_scope_score

    assert checks["oos_decision_agreement"] == 1.0
    tokenizer = load_tokenizer(resolve_model("m", cfg), cfg)
    ours, theirs = (batched_outputs(m, tokenizer, TEXTS, 32, features=True) for m in (torch_model, graph))
    stats = FeatureStats.load(tmp_path / "m-onnx")
    assert [stats.gives(name) for name in sorted(FEATURE_SCORES)] == [True, False, True]  # no knn: not its rule
    for name in filter(stats.gives, FEATURE_SCORES):
        a, b = (out_of_scope_score(name, logits, features, stats) for logits, features in (ours, theirs))
        assert np.allclose(a, b, rtol=1e-3, atol=1e-3), name


def test_int8_export_in_evaluate_predict_and_push(runs, tmp_path):
    out = tmp_path / "student-int8"
    flags = ("--quantize", "int8", "--output", out, "--max-accuracy-drop", "100")  # the gate: a test of its own
    e = run_cli("export", "student", "--runs-dir", runs, *flags, "--json")
    assert e.code == 0, e.stderr
    int8 = e.json["checks"]["int8"]
    recorded = json.loads((out / "run.json").read_text())
    assert recorded["export"]["quantize"] == "int8" and recorded["export"]["checks"] == e.json["checks"]
    assert int8["accuracy_drop_pt"] == pytest.approx((int8["fp32_accuracy"] - int8["int8_accuracy"]) * 100, abs=1e-3)
    r = run_cli("evaluate", "teacher", "student", out, "--runs-dir", runs, "--latency-runs", "3", "--json")
    assert r.code == 0, r.stderr
    teacher, student, graph = r.json["models"]
    assert graph["size_mb"] < student["size_mb"] and graph["parameters"] > 0
    assert graph["oos_rule"]["threshold"] == student["oos_rule"]["threshold"]  # the rule travels with the export
    assert abs(graph["accuracy"] - student["accuracy"]) <= 0.15
    p = run_cli("predict", out, "play some jazz", "--json")
    assert p.code == 0, p.stderr
    assert json.loads(p.stdout)["text"] == "play some jazz"
    d = run_cli("push", out, "--repo-id", "me/student-int8", "--dry-run", "--json")
    assert d.code == 0, d.stderr
    paths = {f["path"] for f in d.json["files"]}
    assert {"model.onnx", "export.json", "config.json", "tokenizer.json", "run.json"} <= paths
    assert "oos_features.safetensors" in paths  # what the out-of-scope rule reads goes with the model
    assert not [p for p in paths if p.endswith((".bin", ".pt", ".pkl", ".safetensors")) and not p.startswith("oos_")]
    assert "ort.InferenceSession" in d.json["card"] and "library_name: onnx" in d.json["card"]


@contextmanager
def lower_int8_accuracy(monkeypatch, by: float):
    """The export's int8 check, run for real on the real int8 graph, then made to say the graph is ``by``
    less accurate than it is."""
    from distill_cli.commands import export

    real = export.quantize_int8

    def stubbed(*args):
        check = real(*args)
        check["int8_accuracy"] -= by
        check["accuracy_drop_pt"] = round((check["fp32_accuracy"] - check["int8_accuracy"]) * 100, 3)
        return check

    with monkeypatch.context() as m:
        m.setattr(export, "quantize_int8", stubbed)
        yield


def test_export_bad_inputs(runs, tiny_st, tmp_path, monkeypatch):
    # A body with no trained head is no classifier.
    assert_one_line_error(run_cli("export", tiny_st, "--dataset", "demo-intents"), 2, "not a fine-tuned classifier")
    # An output that exists: refused without --overwrite, and a folder this tool did not export never replaced.
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep me")
    assert_one_line_error(run_cli("export", "student", "--runs-dir", runs, "-o", tmp_path / "notes"), 2, "exists")
    r = run_cli("export", "student", "--runs-dir", runs, "-o", tmp_path / "notes", "--overwrite")
    assert_one_line_error(r, 2, "not written by `distill export`")
    assert (tmp_path / "notes" / "mine.txt").read_text() == "keep me"
    # The int8 gate: nothing is written when quantization loses more than allowed. Which way int8 rounding goes
    # depends on the CPU (VNNI or not), so the real int8 graph is built and scored, and the score it gets is
    # then made to lose 10 pt: the gate's logic, on any machine.
    with lower_int8_accuracy(monkeypatch, by=0.10):
        r = run_cli("export", "student", "--runs-dir", runs, "--quantize", "int8", "-o", tmp_path / "g")
    assert_one_line_error(r, 1, "int8 loses", "pt of validation accuracy > --max-accuracy-drop 1.0", "nothing written")
    assert not (tmp_path / "g").exists() and not list(tmp_path.glob(".g.tmp-*"))
    assert_one_line_error(run_cli("export", "student", "--runs-dir", runs, "--quantize", "int4"), 2, "int8 or none")
    # Without onnxruntime: one line naming the extra, before any work.
    block_import(monkeypatch, "onnxruntime")
    assert_one_line_error(run_cli("export", "student", "--runs-dir", runs), 2, "pip install 'distill-cli[export]'")


def test_trimmed_vocabulary_keeps_training_predictions_and_spells_unseen_words_in_known_pieces(runs, tmp_path):
    from transformers import AutoTokenizer

    from distill_cli.config import Config
    from distill_cli.modeling import load_for_inference, resolve_model
    from distill_cli.vocab import kept_ids, trimmed_tokenizer

    flags = ("--format", "torch", "--trim-vocab", "-o", tmp_path / "t", "--json")
    r = run_cli("export", "student", "--runs-dir", runs, *flags)
    assert r.code == 0, r.stderr
    trim = r.json["checks"]["trim"]
    assert trim["vocabulary_after"] < trim["vocabulary_before"] and trim["weights_mb_after"] < trim["weights_mb_before"]
    cfg = Config()
    train = json.loads((runs / "student" / "run.json").read_text())["dataset"]["path"]
    from datasets import load_from_disk

    texts = list(load_from_disk(train)["train"]["text"])[:40]
    before = load_for_inference(resolve_model("student", cfg.model_copy(update={"runs_dir": runs})), cfg)
    after = load_for_inference(resolve_model(str(tmp_path / "t"), cfg), cfg)
    assert np.allclose(_logits(before, runs / "student", texts), _logits(after, tmp_path / "t", texts), atol=1e-5)
    assert after.config.vocab_size == trim["vocabulary_after"]
    # A real WordPiece vocabulary: an unseen word is spelled in kept pieces, never [UNK].
    minilm = AutoTokenizer.from_pretrained(resolve_model("minilm-l6", cfg).location)
    kept = kept_ids(minilm, ["set an alarm for seven", "what is the weather"], 32)
    small = trimmed_tokenizer(minilm, kept)
    assert len(small.get_vocab()) == len(kept) < 3000  # ~2,000 single-character pieces, and the texts
    pieces = small.tokenize("xylophone weather")
    assert small.unk_token not in pieces and "weather" in pieces and len(pieces) > 3
    old = minilm("set an alarm")["input_ids"]
    assert small.convert_ids_to_tokens(small("set an alarm")["input_ids"]) == minilm.convert_ids_to_tokens(old)


def test_trimming_is_gated_by_default_and_keeps_the_tokens_of_the_texts_given(runs, tmp_path, monkeypatch):
    from distill_cli.commands import export

    # The default gate (1 pt) applies to trimming as to int8: a trimmed model that scores 5 pt lower is not
    # written unless the user allows it (the scores are stubbed: a real loss depends on the data).
    scores = iter([0.90, 0.85])

    def five_points_lower_after_trimming(*args):
        return next(scores)

    flags = ("student", "--runs-dir", runs, "--format", "torch", "--trim-vocab")
    with monkeypatch.context() as m:
        m.setattr(export, "accuracy", five_points_lower_after_trimming)
        r = run_cli("export", *flags, "-o", tmp_path / "t")
    assert_one_line_error(r, 1, "vocabulary trimming loses 5.00 pt", "> --max-accuracy-drop 1.0", "nothing written")
    assert not (tmp_path / "t").exists()
    # --trim-keep: the tokens of the named texts stay too. With the validation queries kept, trimming changes
    # no validation prediction.
    demo = json.loads(DEMO.read_text())
    validation = demo["val"] + demo["oos_val"]
    (tmp_path / "logs.txt").write_text("\n".join(text for text, _ in validation) + "\n")
    plain = run_cli("export", *flags, "-o", tmp_path / "plain", "--max-accuracy-drop", "100", "--json")
    kept = run_cli("export", *flags, "-o", tmp_path / "kept", "--trim-keep", tmp_path / "logs.txt", "--json")
    assert plain.code == 0 and kept.code == 0, kept.stderr
    a, b = plain.json["checks"]["trim"], kept.json["checks"]["trim"]
    assert b["kept_texts"] == len(validation) and b["vocabulary_after"] > a["vocabulary_after"]
    assert b["validation_accuracy_after"] == b["validation_accuracy_before"] and b["accuracy_drop_pt"] == 0
    r = run_cli("export", "student", "--runs-dir", runs, "--trim-keep", tmp_path / "logs.txt")
    assert_one_line_error(r, 2, "--trim-keep", "pass --trim-vocab too")
    r = run_cli("export", *flags, "--trim-keep", tmp_path / "nope.txt")
    assert_one_line_error(r, 2, "--trim-keep", "nope.txt: no such file")


@pytest.mark.parametrize("score", ["energy+mahalanobis", "knn"])
def test_the_cards_code_gives_the_feature_score_that_predict_applies(tiny_bert, tmp_path, score):
    """A run told to use a feature score: its ONNX export's card holds code that, run as a Hub user would
    run it (on the exported folder), computes the confidence `distill predict` compares with the threshold."""
    import re

    r = run_cli("finetune", *TRAIN_FLAGS, "--student", tiny_bert, "--epochs", "1", "--name", "m",
                "--oos-score", score)  # fmt: skip
    assert r.code == 0, r.stderr
    path = tmp_path / "runs" / "m" / "run.json"
    record = json.loads(path.read_text())
    rule = record["oos_rule"]
    assert rule["score"] == score and rule["score_auroc"] == {}  # told, not chosen
    if score == "knn":
        # The tiny random encoder's vectors all point nearly one way (similarities within 1e-3 of each other), so
        # a threshold chosen among them lies within float32 noise of a query: put it in their widest gap, where
        # the export's parity check (PyTorch's decisions against the graph's) measures the graph, not the noise.
        texts = [t for t, _ in json.loads(DEMO.read_text())["val"]]
        p = run_cli("predict", "m", *texts, "--json")
        conf = np.sort([json.loads(line)["confidence"] for line in p.stdout.splitlines()])
        widest = int(np.argmax(np.diff(conf)))
        rule["threshold"] = float(conf[widest : widest + 2].mean())
        path.write_text(json.dumps(record))
    out = tmp_path / "m-onnx"
    assert run_cli("export", "m", "--output", out).code == 0
    d = run_cli("push", out, "--repo-id", "me/m", "--dry-run", "--json")
    assert d.code == 0, d.stderr
    code = "\n".join(re.findall(r"```python\n(.*?)```", d.json["card"], flags=re.S))
    assert "oos_features.safetensors" in code and '"features"' in code
    namespace: dict = {}
    exec(code.replace('snapshot_download("me/m")', repr(str(out))), namespace)  # noqa: S102 - our own card
    p = run_cli("predict", out, "how do i set an alarm for 7 am", "--json")
    answer = json.loads(p.stdout)
    assert -namespace["oos_score"][0] == pytest.approx(answer["confidence"], rel=1e-4, abs=1e-4)
    assert bool(namespace["out_of_scope"][0]) == (answer["confidence"] < rule["threshold"])


def test_the_checks_read_a_prepared_folder_as_it_is_in_the_models_label_order(runs):
    """``export`` takes its validation texts straight from the run's prepared folder (no tokenizing, no
    relabelling pass): the same texts and gold ids as the training path gives, in any label order the model
    has; a label the model does not know is one line."""
    from distill_cli import modeling
    from distill_cli.config import load_config
    from distill_cli.data.prepared import load_for_training, split_texts
    from distill_cli.errors import UsageError
    from distill_cli.runs import RunRecord

    record = RunRecord.read(runs / "student")
    cfg = load_config(None, "export", {"dataset": record.dataset.path})
    ref = modeling.resolve_model(str(runs / "student"), cfg)
    tokenizer = modeling.load_tokenizer(ref, cfg)
    for labels in (record.labels, record.labels[::-1]):
        direct = split_texts(cfg, tokenizer, ref.location, labels)
        prepared = load_for_training(cfg, tokenizer, ref.location, labels).datasets
        assert set(direct) == set(prepared)
        for split, (texts, gold) in direct.items():
            assert texts == list(prepared[split]["text"]) and gold == list(prepared[split]["label"])
    with pytest.raises(UsageError, match="unknown to the model"):
        split_texts(cfg, tokenizer, ref.location, record.labels[1:])
