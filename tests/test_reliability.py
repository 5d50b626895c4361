"""Clear on every failure, silent on none: damaged and odd inputs on real files, each refused with one line
that names the file, row or key (or read right), and nothing secret or local printed or published."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import DEMO, TRAIN_FLAGS, assert_one_line_error, run_cli

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def without_tokenizer(model: Path, dest: Path) -> Path:
    """A copy of ``model`` with its weights and config but none of its tokenizer files."""
    shutil.copytree(model, dest, ignore=shutil.ignore_patterns(*TOKENIZER_FILES))
    return dest


# ---------------------------------------------------------------------------------------------- configs


def billion_laughs(path: Path, levels: int = 9) -> Path:
    """Nine levels of nine aliases (9**9 values once expanded) behind a real key."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    path.write_text("\n".join(lines) + f"\naliases: {{bomb: *l{levels - 1}}}\n")
    return path


def test_a_yaml_alias_bomb_is_refused_before_it_is_built(tmp_path):
    start = time.perf_counter()
    r = run_cli("config", "show", "--config", billion_laughs(tmp_path / "bomb.yaml"))
    assert_one_line_error(r, 2, "bomb.yaml", "expand to more than 100,000 values")
    assert time.perf_counter() - start < 5
    (tmp_path / "self.yaml").write_text("aliases: &a {x: *a}\n")
    assert_one_line_error(run_cli("config", "show", "--config", tmp_path / "self.yaml"), 2, "refers to itself")
    # Aliases within the bound are plain YAML, read as ever.
    (tmp_path / "ok.yaml").write_text("base: &lr 1.0e-4\nlearning_rate: *lr\n")
    r = run_cli("config", "show", "--config", tmp_path / "ok.yaml")
    assert_one_line_error(r, 2, "unknown key 'base'")
    (tmp_path / "ok.yaml").write_text("finetune: &f {epochs: 4}\ndistill: *f\n")
    r = run_cli("config", "show", "--config", tmp_path / "ok.yaml", "--command", "distill")
    assert r.code == 0 and "epochs: 4" in r.stdout


# ------------------------------------------------------------------------------------- secrets and paths


def test_a_password_in_hf_endpoint_is_never_printed(runs, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_TOKEN", "hf_test_token_not_printed")
    monkeypatch.setenv("HF_ENDPOINT", "http://me:SECRET@127.0.0.1:9")  # the discard port: nothing listens
    r = run_cli("push", "student", "--runs-dir", runs, "--repo-id", "me/x")
    assert_one_line_error(r, 1, "cannot reach http://me:***@127.0.0.1:9")
    assert "SECRET" not in r.stdout + r.stderr and "hf_test_token" not in r.stderr


def test_every_printed_url_loses_its_password():
    from distill_cli.hub import redact_urls

    text = "GET https://me:p4ss@hub.example/api failed; postgresql+psycopg://u:pw@db:5432/x; http://open.example/"
    assert redact_urls(text) == (
        "GET https://me:***@hub.example/api failed; postgresql+psycopg://u:***@db:5432/x; http://open.example/"
    )


def test_the_card_names_the_dataset_as_the_user_knows_it(runs, tmp_path):
    """A run evaluated on a prepared folder of the user's own file: the card says ``my-intents.json``."""
    data = tmp_path / "data" / "my-intents.json"
    data.parent.mkdir()
    shutil.copy(DEMO, data)
    prep = tmp_path / "prepared-intents"
    assert run_cli("prepare", "--dataset", data, "--student", runs / "student", "--output", prep).code == 0
    r = run_cli("evaluate", "teacher", "student", "--runs-dir", runs, "--dataset", prep, "--latency-runs", "2")
    assert r.code == 0, r.stderr
    d = run_cli("push", "student", "--runs-dir", runs, "--repo-id", "me/s", "--dry-run", "--json")
    assert d.code == 0, d.stderr
    card = d.json["card"]
    assert "On the test split of my-intents.json" in card
    assert str(tmp_path) not in card and "/tmp" not in card


# ------------------------------------------------------------------------------- models that are not whole


def test_a_model_folder_without_its_tokenizer_is_refused(tiny_bert, tiny_runs, tmp_path):
    bare = without_tokenizer(tiny_bert, tmp_path / "bare")
    for student in (bare, f"static:{bare}"):
        r = run_cli("finetune", *TRAIN_FLAGS, "--student", student, "--epochs", "1", "--name", "x")
        assert_one_line_error(r, 2, str(bare), "tokenizer has 5 tokens for a model of", "tokenizer files")
    teacher = without_tokenizer(tiny_runs / "teacher", tmp_path / "teacher")
    r = run_cli("distill", *TRAIN_FLAGS, "--teacher", teacher, "--student", tiny_bert, "--name", "y")
    assert_one_line_error(r, 2, str(teacher), "tokenizer has 5 tokens")
    assert not Path("runs").exists()


@pytest.mark.parametrize("fmt", ["torch", "onnx"])
def test_labels_edited_after_export_or_training_are_refused(runs, tmp_path, fmt):
    out = tmp_path / f"export-{fmt}"
    e = run_cli("export", "student", "--runs-dir", runs, "--format", fmt, "--output", out, "--json")
    assert e.code == 0, e.stderr
    labels = json.loads((runs / "student" / "run.json").read_text())["labels"]
    assert json.loads((out / "export.json").read_text())["labels"] == labels
    assert run_cli("predict", out, "play some jazz").code == 0
    for folder in (out, runs / "student"):
        config = json.loads((folder / "config.json").read_text())
        config["id2label"]["0"], config["id2label"]["1"] = config["id2label"]["1"], config["id2label"]["0"]
        (folder / "config.json").write_text(json.dumps(config))
        for command in (("predict", folder, "play some jazz"), ("evaluate", folder, "--latency-runs", "1")):
            r = run_cli(*command, "--runs-dir", runs)
            assert_one_line_error(r, 2, f"{folder}: config.json lists the labels in another order", "output 0")


def test_push_refuses_a_run_whose_weights_are_missing_or_truncated(runs):
    weights = runs / "student" / "model.safetensors"
    whole = weights.read_bytes()
    weights.write_bytes(whole[: len(whole) // 2])
    r = run_cli("push", "student", "--runs-dir", runs, "--repo-id", "me/s", "--dry-run")
    assert_one_line_error(r, 2, f"{weights} is damaged: it is truncated", "train or export the model again")
    assert_one_line_error(run_cli("predict", "student", "hi", "--runs-dir", runs), 2, "is damaged: it is truncated")
    weights.write_bytes(b"\x08\x00")  # not even a header
    assert_one_line_error(run_cli("evaluate", "student", "--runs-dir", runs), 2, "its header does not read")
    weights.unlink()
    r = run_cli("push", "student", "--runs-dir", runs, "--repo-id", "me/s", "--dry-run")
    assert_one_line_error(r, 2, "lacks model.safetensors")


def test_a_truncated_onnx_graph_is_named(runs, tmp_path):
    out = tmp_path / "onnx"
    assert run_cli("export", "student", "--runs-dir", runs, "--output", out).code == 0
    graph = out / "model.onnx"
    graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 3])
    for command in (("predict", out, "play some jazz"), ("push", out, "--repo-id", "me/o", "--dry-run")):
        assert_one_line_error(run_cli(*command), 2, f"{graph} is damaged: it does not parse as ONNX")


# -------------------------------------------------------------------------------------- data on disk


def test_label_lists_blank_texts_and_a_file_as_output_are_refused(tiny_bert, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = ["wake me", "rain today", "set an alarm", "will it snow"]
    pq.write_table(pa.table({"text": texts, "label": [["alarm"], ["weather"], ["alarm"], ["weather", "x"]]}),
                   tmp_path / "lists.parquet")  # fmt: skip
    r = run_cli("prepare", "--dataset", tmp_path / "lists.parquet", "--student", tiny_bert)
    assert_one_line_error(r, 2, "lists.parquet", "column 'label': row 1 has a list as its label", "multi-label")
    rows = [{"text": t, "label": lab} for t, lab in zip(texts, ["alarm", "weather"] * 2)]
    rows[2]["text"] = "   "
    (tmp_path / "blank.json").write_text(json.dumps(rows))
    r = run_cli("prepare", "--dataset", tmp_path / "blank.json", "--student", tiny_bert)
    assert_one_line_error(r, 2, "blank.json: the train split, column 'text': row 3 is empty")
    rows[2]["text"] = 42
    (tmp_path / "blank.json").write_text(json.dumps(rows))
    r = run_cli("prepare", "--dataset", tmp_path / "blank.json", "--student", tiny_bert)
    assert_one_line_error(r, 2, "column 'text': row 3 is not text (int 42)")
    (tmp_path / "a-file").write_text("mine")
    r = run_cli("prepare", "--dataset", "demo-intents", "--student", tiny_bert, "--output", tmp_path / "a-file")
    assert_one_line_error(r, 2, "--output", "a-file is a file")
    assert (tmp_path / "a-file").read_text() == "mine"


@pytest.mark.parametrize(
    "manifest, needle",
    [
        (b"\xa4\xff garbage", "manifest.json is damaged (not JSON"),
        (b"[1, 2]", "a JSON list, not an object"),
        (None, "'labels': field required"),
    ],
)
def test_a_damaged_manifest_is_one_line_naming_it(tiny_bert, tmp_path, manifest, needle):
    prep = tmp_path / "prep"
    assert run_cli("prepare", "--dataset", "demo-intents", "--student", tiny_bert, "--output", prep).code == 0
    if manifest is None:
        incomplete = json.loads((prep / "manifest.json").read_text())
        del incomplete["labels"]
        manifest = json.dumps(incomplete).encode()
    (prep / "manifest.json").write_bytes(manifest)
    r = run_cli("finetune", "--dataset", prep, "--student", tiny_bert, "--max-length", "24", "--epochs", "1")
    assert_one_line_error(r, 2, f"prepared dataset {prep}", needle, "prepare it again with: distill prepare")
    assert not Path("runs").exists()
    # The command it names works: the folder is prepare's own, so --overwrite replaces it.
    again = run_cli("prepare", "--dataset", "demo-intents", "--student", tiny_bert, "--output", prep, "--overwrite")
    assert again.code == 0, again.stderr
    assert json.loads((prep / "manifest.json").read_text())["labels"]


def test_training_and_evaluating_never_write_into_the_dataset_folder(tiny_bert, tmp_path):
    """A dataset on read-only storage: every file of the prepared folder is as prepare left it."""
    prep = tmp_path / "prep"
    assert run_cli("prepare", "--dataset", "demo-intents", "--student", tiny_bert, "--output", prep).code == 0
    before = {p.relative_to(prep): p.stat().st_mtime_ns for p in prep.rglob("*")}
    r = run_cli("finetune", "--dataset", prep, "--student", tiny_bert, "--max-length", "24", "--epochs", "1", "-o", "m")
    assert r.code == 0, r.stderr
    assert run_cli("evaluate", "m", "--dataset", prep, "--latency-runs", "1").code == 0
    assert {p.relative_to(prep): p.stat().st_mtime_ns for p in prep.rglob("*")} == before


def test_a_full_disk_during_export_names_the_folder(runs, tmp_path):
    """A real write failure: the export runs in a process whose files may not grow past 64 kB (what a
    full disk or a quota does to a write), and says so in one line naming the folder it was writing."""
    out = tmp_path / "big-export"
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (64_000, 64_000))\n"
        "from distill_cli.cli import main\n"
        f"main(['export', 'student', '--runs-dir', {str(runs)!r}, '--output', {str(out)!r}])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert lines[0].startswith(f"error: cannot write {out}: File too large") and "nothing was written" in lines[0]
    assert not out.exists() and not list(tmp_path.glob(".big-export.tmp-*"))


# ------------------------------------------------------------------------------------------- searches


def test_a_damaged_study_journal_is_one_line(runs, tiny_distilbert, tmp_path):
    (tmp_path / "s.yaml").write_text("search: {epochs: [1, 2]}\n")
    study = runs / "study"
    study.mkdir()
    (study / "study.journal").write_bytes(b'{"op_code": 0, "worker_id": "x"}\n\xa4\xa4 not a journal\n')
    flags = ("--config", tmp_path / "s.yaml", "--runs-dir", runs, "--teacher", "teacher", "--student", tiny_distilbert)
    r = run_cli("search", *TRAIN_FLAGS, *flags, "--name", "study", "--trials", "1")
    assert_one_line_error(r, 2, f"study file {study / 'study.journal'} is damaged", "move it away")


def test_a_missing_database_driver_names_the_package(runs, tiny_distilbert, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if it were not installed
    (tmp_path / "s.yaml").write_text("search: {epochs: [1, 2]}\n")
    flags = ("--config", tmp_path / "s.yaml", "--runs-dir", runs, "--teacher", "teacher", "--student", tiny_distilbert)
    r = run_cli("search", *TRAIN_FLAGS, *flags, "--storage", "postgresql://me:pw@127.0.0.1:9/db")
    needles = ("postgresql://me:***@127.0.0.1:9/db", "driver 'psycopg'", "pip install 'distill-cli[search-postgres]'")
    assert_one_line_error(r, 2, *needles)
