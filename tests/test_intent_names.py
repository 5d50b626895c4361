"""Each intent's name as one more labelled training query (``intent_names``): names read as words, placeholders
and the out-of-scope label skipped, names equal to an evaluation or a training query dropped; a real run adds
them to its training split with their intents' labels and records how many in ``run.json``."""

from __future__ import annotations

import json

import pytest
from conftest import few_shot_file, run_cli

from distill_cli.data.intent_names import as_query, name_rows, with_name_rows


@pytest.mark.parametrize(
    ("name", "query"),
    [
        ("card_declined", "card declined"),
        ("PinChange", "pin change"),
        ("credit-limit.change", "credit limit change"),
        ("what_is_your_name", "what is your name"),
        ("oos", "oos"),
        ("ISA_transfer", "isa transfer"),
        ("LABEL_3", None),
        ("label3", None),
        ("12", None),
        ("c7", None),
        ("class 12", None),
        ("_", None),
    ],
)
def test_a_name_reads_as_words_or_not_at_all(name, query):
    assert as_query(name) == query


def test_names_skip_the_out_of_scope_label_and_never_equal_an_evaluation_or_a_training_query():
    labels = ["card_declined", "pin_change", "LABEL_2", "oos", "balance", "transfer"]
    rows, counts = name_rows(labels, "oos", ["Balance", "how do i move money"], ["what is my  Transfer", "transfer"])
    assert rows == [("card declined", 0), ("pin change", 1)]
    assert counts == {"intent_names": 2, "names_not_words": 1, "names_as_evaluation_queries": 1,
                      "names_as_training_queries": 1}  # fmt: skip


def test_a_run_with_intent_names_trains_on_them_with_their_labels(tiny_bert, tmp_path):
    """``--intent-names`` adds one labelled query an intent to what the teacher trains on, and ``run.json`` counts
    them; a student distilled with it trains on them too, beside the labelled queries (and their variants)."""
    data = few_shot_file(tmp_path, 5)
    intents = len({label for _, label in json.loads(data.read_text())["train"]})
    common = ("--dataset", data, "--epochs", "1", "--batch-size", "8", "--max-length", "24", "--json")
    r = run_cli("finetune", "--student", tiny_bert, "--name", "t", "--intent-names", *common)
    assert r.code == 0, r.stderr
    record = json.loads((tmp_path / "runs" / "t" / "run.json").read_text())
    assert record["config"]["intent_names"] is True and record["rows"]["intent_names"] == intents
    assert f"intent names: {intents} added as training queries\n" in r.stderr  # every demo name reads as words
    teacher = tmp_path / "runs" / "t"
    runs = {}
    for name, flag in (("s", "--intent-names"), ("s0", "--no-intent-names")):
        r = run_cli("distill", "--teacher", teacher, "--student", tiny_bert, "--name", name, flag, *common)
        assert r.code == 0, r.stderr
        runs[name] = json.loads((tmp_path / "runs" / name / "run.json").read_text())["rows"]
    assert runs["s"]["labelled"] == runs["s0"]["labelled"] + intents and runs["s"]["intent_names"] == intents
    assert "intent_names" not in runs["s0"] and "intent names" not in r.stderr
    # an option, not a default: a few-shot run given no flag adds no names
    r = run_cli("finetune", "--student", tiny_bert, "--name", "plain", *common)
    assert r.code == 0 and "intent names" not in r.stderr, r.stderr
    assert "intent_names" not in (json.loads((tmp_path / "runs" / "plain" / "run.json").read_text())["rows"] or {})


def test_the_name_rows_join_the_training_split_with_their_labels_and_tokens(tiny_bert):
    """``with_name_rows`` appends each name under its intent's id, tokenized by the run's tokenizer."""
    from datasets import ClassLabel, Dataset, Features, Sequence, Value
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    names = ["set_alarm", "play_music", "weather"]
    texts = ["wake me at six", "play some jazz"]
    encoded = tokenizer(texts, truncation=True, max_length=24)
    features = Features({"text": Value("string"), "label": ClassLabel(names=names),
                         **{k: Sequence(Value("int64")) for k in encoded}})  # fmt: skip
    train = Dataset.from_dict({"text": texts, "label": [0, 1], **encoded}, features=features)
    rows, _ = name_rows(names, None, texts, [])
    grown = with_name_rows(train, rows, tokenizer, 24)
    assert grown["text"] == [*texts, "set alarm", "play music", "weather"]
    assert grown["label"] == [0, 1, 0, 1, 2] and grown.features == train.features
    assert grown["input_ids"][2] == tokenizer("set alarm", truncation=True, max_length=24)["input_ids"]


def test_a_run_says_which_names_it_skipped(tiny_bert, tmp_path):
    """An intent named ``LABEL_9`` is not a query: the run adds the other names and says why it left one out."""
    data = few_shot_file(tmp_path, 5)
    rows = json.loads(data.read_text())
    renamed = {split: [[t, "LABEL_9" if y == "tell_joke" else y] for t, y in rows[split]] for split in rows}
    data.write_text(json.dumps(renamed))
    r = run_cli("finetune", "--dataset", data, "--student", tiny_bert, "--name", "t", "--epochs", "1",
                "--batch-size", "8", "--max-length", "24", "--intent-names", "--json")  # fmt: skip
    assert r.code == 0, r.stderr
    intents = len({y for _, y in renamed["train"]})
    assert f"intent names: {intents - 1} added as training queries; 1 read as no words\n" in r.stderr
    counts = json.loads((tmp_path / "runs" / "t" / "run.json").read_text())["rows"]
    assert (counts["intent_names"], counts["names_not_words"]) == (intents - 1, 1)
