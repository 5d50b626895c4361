"""Shared fixtures: tiny random BERT-family models with real WordPiece tokenizers, trained tiny runs,
and a runner that calls the real CLI in-process and captures what it prints."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CLINC = REPO.parent / "shared" / "datasets" / "clinc150" / "data_oos_plus.json"
DEMO = Path(str(resources.files("distill_cli") / "data" / "demo_intents.json"))
# Ten labelled queries of three intents, out-of-scope among them: small data for prepare's tests.
ROWS = [
    ("wake me at 7", "alarm"),
    ("set an alarm for 6", "alarm"),
    ("alarm at noon", "alarm"),
    ("is it raining", "weather"),
    ("forecast for today", "weather"),
    ("will it snow", "weather"),
    ("what is love", "oos"),
    ("who are you", "oos"),
    ("sing a song", "oos"),
    ("cheap flights", "oos"),
]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
MPNET_SPECIAL = ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict:
        return json.loads(self.stdout)


def run_cli(*args: str) -> Result:
    """Run `distill ARGS` in this process; returns the exit code and what went to stdout and stderr."""
    from distill_cli.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return Result(code, out.getvalue(), err.getvalue())


def assert_one_line_error(result: Result, code: int, *needles: str) -> None:
    assert result.code == code, (result.code, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:"), lines[0]
    assert "Traceback" not in result.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


def block_import(monkeypatch, prefix: str) -> None:
    """Make every import of a module starting with ``prefix`` fail, as if the package were not installed."""
    import builtins

    real_import = builtins.__import__

    def blocked(name, *args, **kwargs):
        if name.startswith(prefix):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", blocked)


def demo_words() -> list[str]:
    data = json.loads(DEMO.read_text())
    words = {w for pairs in data.values() for text, _ in pairs for w in re.findall(r"\w+|[^\w\s]", text.lower())}
    return sorted(words)


def few_shot_file(tmp_path: Path, per_intent: int) -> Path:
    """The demo data with its first ``per_intent`` training queries an intent and its test split: few-shot data
    without a validation split."""
    data = json.loads(DEMO.read_text())
    kept, seen = [], {}
    for text, label in data["train"]:
        if seen.get(label, 0) < per_intent:
            kept.append([text, label])
            seen[label] = seen.get(label, 0) + 1
    path = tmp_path / "few.json"
    path.write_text(json.dumps({"train": kept, "test": data["test"]}))
    return path


def build_tiny(path: Path, words: list[str], model_type: str = "bert", layers: int = 2, seed: int = 0) -> Path:
    """A random 32-wide encoder and a WordPiece tokenizer over ``words``, saved as a model directory."""
    import torch
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        BertTokenizerFast,
        DistilBertConfig,
        DistilBertForSequenceClassification,
        DistilBertTokenizerFast,
        MPNetConfig,
        MPNetForSequenceClassification,
        MPNetTokenizerFast,
    )

    path.mkdir(parents=True, exist_ok=True)
    vocab = path / "vocab.txt"
    specials = MPNET_SPECIAL if model_type == "mpnet" else SPECIAL
    vocab.write_text("\n".join(specials + words) + "\n")
    torch.manual_seed(seed)
    sizes = dict(hidden_size=32, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=64)
    mpnet_sizes = sizes | {"max_position_embeddings": 66}
    kinds = {
        "bert": (BertTokenizerFast, BertConfig, BertForSequenceClassification, sizes | {"max_position_embeddings": 64}),
        # all-mpnet-base-v2's special tokens (<pad> = 1, as its config expects); positions start after padding
        "mpnet": (MPNetTokenizerFast, MPNetConfig, MPNetForSequenceClassification, mpnet_sizes),
        "distilbert": (
            DistilBertTokenizerFast,
            DistilBertConfig,
            DistilBertForSequenceClassification,
            dict(dim=32, n_layers=layers, n_heads=2, hidden_dim=64, max_position_embeddings=64),
        ),
    }
    tokenizer_class, config_class, model_class, sizes = kinds[model_type]
    tok = tokenizer_class(vocab=str(vocab))
    model = model_class(config_class(vocab_size=len(specials) + len(words), **sizes))
    # A real tokenizer that knows the words (transformers 5 ignores `vocab_file=` and keeps only the specials).
    assert len(tok.get_vocab()) == len(specials) + len(words), len(tok.get_vocab())
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def pytest_configure(config):
    import torch

    torch.set_num_threads(1)  # tiny models gain nothing from more threads; spare the other core


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("models") / "tiny-bert", demo_words(), layers=4)


@pytest.fixture(scope="session")
def tiny_distilbert(tmp_path_factory) -> Path:
    """Another model type with another vocabulary (every other word): a student unlike the teacher."""
    return build_tiny(tmp_path_factory.mktemp("models") / "tiny-distilbert", demo_words()[::2], "distilbert")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every test runs in its own folder with its own cache, offline, with no Hub token around."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    from distill_cli.hub import hub_unreachable_reason

    hub_unreachable_reason.cache_clear()
    yield
    hub_unreachable_reason.cache_clear()


TRAIN_FLAGS = ("--dataset", "demo-intents", "--batch-size", "16", "--learning-rate", "5e-3", "--max-length", "24")


def distill_from_teacher(runs, student, *extra: str) -> Result:
    """`distill distill` on the demo data from the tiny teacher run in ``runs``."""
    return run_cli("distill", *TRAIN_FLAGS, "--runs-dir", runs, "--teacher", "teacher", "--student", student, *extra)


def waits_on_lock(lock: Path, call, finish):
    """``call()`` in a second thread while this one holds ``lock`` (as another process would): it must still be
    waiting a second later; ``finish()`` then does what that other process leaves behind, the lock is let go,
    and ``call``'s result is returned."""
    import threading
    import time

    from distill_cli.files import file_lock

    got = {}
    with file_lock(lock):
        later = threading.Thread(target=lambda: got.update(result=call()))
        later.start()
        time.sleep(1.0)
        assert later.is_alive(), "it did not wait for the lock"
        finish()
    later.join(timeout=60)
    return got["result"]


@contextmanager
def working_in(root: Path):
    """For fixtures wider than a test: work in ``root`` with its own cache, offline."""
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    mp.setenv("DISTILL_CACHE", str(root / "cache"))
    mp.setenv("HF_HUB_OFFLINE", "1")
    try:
        yield
    finally:
        mp.undo()


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory, tiny_bert) -> Path:
    """A runs folder holding a tiny fine-tuned teacher ('teacher') and a distilled 2-layer student ('student')."""
    root = tmp_path_factory.mktemp("runs-home")
    with working_in(root):
        r = run_cli("finetune", *TRAIN_FLAGS, "--student", tiny_bert, "--epochs", "6", "--name", "teacher")
        assert r.code == 0, r.stderr
        flags = ("--student-layers", "2", "--alpha", "0.5", "--temperature", "2", "--epochs", "4")
        r = distill_from_teacher(root / "runs", "teacher", *flags, "--name", "student")
        assert r.code == 0, r.stderr
    return root / "runs"


@pytest.fixture
def runs(tiny_runs, tmp_path) -> Path:
    """A private copy of the tiny runs in this test's folder (tests may write into it)."""
    shutil.copytree(tiny_runs, tmp_path / "runs")
    return tmp_path / "runs"


@pytest.fixture(scope="session")
def tiny_st(tmp_path_factory) -> Path:
    """A tiny sentence-transformers folder: a BERT body at the root, `modules.json` and `1_Pooling` (mean),
    laid out like all-MiniLM-L6-v2."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = tmp_path_factory.mktemp("models") / "tiny-st"
    path.mkdir()
    words = demo_words()
    (path / "vocab.txt").write_text("\n".join(SPECIAL + words) + "\n")
    torch.manual_seed(3)
    config = BertConfig(
        vocab_size=len(SPECIAL) + len(words),
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(path)
    tok = BertTokenizerFast(vocab=str(path / "vocab.txt"))
    assert tok.tokenize("play some jazz") == ["play", "some", "jazz"]
    tok.save_pretrained(path)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (path / "modules.json").write_text(json.dumps(modules))
    (path / "1_Pooling").mkdir()
    pooling = {"word_embedding_dimension": 32, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True}
    (path / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    return path


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server for this session (``postgres_server.py``). Where PostgreSQL is not installed
    the tests that need it are skipped, except in CI (``CI`` set), where that is a failure."""
    import postgres_server

    if not postgres_server.available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not installed at {postgres_server.BIN} (set PG_BIN)")
        pytest.skip(f"PostgreSQL is not installed at {postgres_server.BIN}")
    with postgres_server.server() as url:
        yield url
