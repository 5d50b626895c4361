"""`distill push`: the real huggingface_hub client against a local Hub over HTTP."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from conftest import assert_one_line_error, run_cli
from hub_server import FakeHub

TOKEN = "hf_SECRETtokenDoNotLeak1234567890"


def go_online(monkeypatch) -> None:
    """The Hub reachable again for this test: the variable, and huggingface_hub's copy of it, which it reads
    once when first imported (by an earlier test, perhaps, while the variable was set)."""
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def evaluated(runs):
    """The tiny runs, with the student evaluated against its teacher (eval_results.json)."""
    r = run_cli("evaluate", "teacher", "student", "--runs-dir", runs, "--latency-runs", "3")
    assert r.code == 0, r.stderr
    # Junk a careless upload would take along.
    (runs / "student" / "training_args.bin").write_bytes(b"pickle")
    (runs / "student" / "optimizer.pt").write_bytes(b"pickle")
    (runs / "student" / "checkpoint-10").mkdir()
    (runs / "student" / "checkpoint-10" / "model.safetensors").write_bytes(b"old")
    (runs / "student" / "outside.safetensors").symlink_to(runs / "teacher" / "model.safetensors")
    return runs


def push(runs, *args):
    return run_cli("push", "student", "--runs-dir", runs, *args)


EXPECTED = [
    "README.md",
    "config.json",
    "eval_results.json",
    "model.safetensors",
    "oos_features.safetensors",
    "run.json",
    "tokenizer.json",
    "tokenizer_config.json",
]


def test_dry_run_lists_exactly_the_intended_files_and_needs_no_token(evaluated):
    r = push(evaluated, "--repo-id", "me/clinc-student", "--dry-run", "--json")
    assert r.code == 0, r.stderr
    out = r.json
    assert out["repo_id"] == "me/clinc-student"
    assert sorted(f["path"] for f in out["files"]) == EXPECTED
    sizes = {f["path"]: f["bytes"] for f in out["files"]}
    assert sizes["model.safetensors"] == (evaluated / "student" / "model.safetensors").stat().st_size
    assert out["card"].startswith("---\n") and "model-index" in out["card"]
    assert "would upload to me/clinc-student" in r.stderr


def test_push_uploads_one_commit_with_a_real_card(evaluated, monkeypatch):
    go_online(monkeypatch)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with FakeHub(token=TOKEN) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        r = push(evaluated, "--repo-id", "me/clinc-student", "--private", "--commit-message", "first", "--json")
    assert r.code == 0, r.stderr
    assert hub.repos["me/clinc-student"]["visibility"] == "private"
    assert hub.repos["me/clinc-student"]["type"] == "model"
    assert len(hub.commits) == 1 and hub.commits[0]["header"]["summary"] == "first"
    uploaded = hub.files["me/clinc-student"]
    assert sorted(uploaded) == EXPECTED
    for name in EXPECTED[1:]:
        if name not in ("run.json", "eval_results.json"):  # those go as public copies: see the next test
            assert uploaded[name] == (evaluated / "student" / name).read_bytes(), name

    card = uploaded["README.md"].decode()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["pipeline_tag"] == "text-classification" and meta["library_name"] == "transformers"
    evals = json.loads((evaluated / "student" / "eval_results.json").read_text())
    index = meta["model-index"][0]["results"][0]
    assert index["task"]["type"] == "text-classification"
    assert index["dataset"]["split"] == "test" and index["dataset"]["name"] == "builtin:demo-intents"
    metrics = {m["name"]: m["value"] for m in index["metrics"]}
    assert metrics["Accuracy"] == pytest.approx(evals["result"]["accuracy"], abs=1e-4)
    assert metrics["In-scope accuracy"] == pytest.approx(evals["result"]["in_scope_accuracy"], abs=1e-4)
    assert metrics["Out-of-scope recall"] == pytest.approx(evals["result"]["oos_recall"], abs=1e-4)
    # The body: teacher, hyperparameters, the comparison table and a usage snippet.
    assert "distilled from `teacher`" in card  # a local teacher: named, not linked
    for needle in (
        "| alpha | 0.5 |",
        "| temperature | 2.0 |",
        "| epochs | 4 |",
        "| seed | 42 |",
        "| batch_size | 16 |",
        "| weight_decay | 0.01 |",
        "| learning_rate | 0.005 |",
        "| teacher |",
        "**clinc-student** (this model)",
        'pipeline("text-classification", model="me/clinc-student")',
    ):
        assert needle in card, needle
    assert r.json["url"].endswith("me/clinc-student")


def test_nothing_private_leaves_the_machine(evaluated, monkeypatch, tmp_path):
    """run.json and eval_results.json name datasets and models as a user knows them: no local path, no home
    folder, no cache key. They stay valid records, and the local files keep their paths."""
    from distill_cli.runs import RunRecord

    local = json.loads((evaluated / "student" / "run.json").read_text())
    cache_key = Path(local["dataset"]["path"]).name
    home_of_runs = str(Path(local["output"]).parents[1])
    assert home_of_runs in json.dumps(local)  # the local record does hold paths
    go_online(monkeypatch)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with FakeHub(token=TOKEN) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        assert push(evaluated, "--repo-id", "me/private-check").code == 0
    uploaded = hub.files["me/private-check"]
    for name in ("run.json", "eval_results.json", "README.md"):
        text = uploaded[name].decode()
        for private in (home_of_runs, str(tmp_path), str(Path.home()), "site-packages", cache_key, "/tmp/"):
            assert private not in text, (name, private)
    record = json.loads(uploaded["run.json"])
    assert record["dataset"]["source"] == "builtin:demo-intents" and record["teacher"]["spec"] == "teacher"
    assert record["student"]["location"] == "teacher" and record["output"] == "student"
    assert record["labels"] == local["labels"] and record["metrics"] == local["metrics"]
    public = tmp_path / "public"
    public.mkdir()
    (public / "run.json").write_bytes(uploaded["run.json"])
    assert RunRecord.read(public).name == "student"  # still a record the tool reads
    assert json.loads((evaluated / "student" / "run.json").read_text()) == local


def test_a_card_pushed_before_evaluate_holds_the_validation_metrics(runs):
    r = run_cli("push", "student", "--runs-dir", runs, "--repo-id", "me/early", "--dry-run", "--json")
    assert r.code == 0, r.stderr
    card = r.json["card"]
    meta = yaml.safe_load(card.split("---")[1])
    result = meta["model-index"][0]["results"][0]
    assert result["dataset"]["split"] == "validation"
    metrics = {m["name"]: m["value"] for m in result["metrics"]}
    run = json.loads((runs / "student" / "run.json").read_text())
    assert metrics["Accuracy"] == pytest.approx(run["metrics"]["accuracy"], abs=1e-4)
    assert "On the validation split" in card and "Not evaluated on a test split yet" in card


def test_the_token_appears_in_no_output_and_no_file(evaluated, monkeypatch, tmp_path):
    go_online(monkeypatch)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with FakeHub(token=TOKEN) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        ok = push(evaluated, "--repo-id", "me/a", "--json")
        bad = FakeHub(token="another")
    assert hub.auth_headers and all(h == f"Bearer {TOKEN}" for h in hub.auth_headers)  # it was really used
    with bad:
        monkeypatch.setenv("HF_ENDPOINT", bad.url)
        denied = push(evaluated, "--repo-id", "me/a", "--debug")
    for result in (ok, denied):
        assert TOKEN not in result.stdout + result.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert TOKEN.encode() not in path.read_bytes(), path
    assert all(TOKEN.encode() not in data for data in hub.files["me/a"].values())
    assert "visibility" not in hub.repos["me/a"]  # no --private: the owner's default applies


def test_no_token_exits_2(evaluated, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no token file either
    go_online(monkeypatch)
    assert_one_line_error(push(evaluated, "--repo-id", "me/a"), 2, "not logged in: run `hf auth login` or set HF_TOKEN")


@pytest.mark.parametrize(
    "status, needle", [(401, "authentication failed"), (403, "permission denied"), (404, "not found: me/a")]
)
def test_hub_errors_are_one_line_exit_1(evaluated, monkeypatch, status, needle):
    go_online(monkeypatch)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with FakeHub(fail_with=status) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        r = push(evaluated, "--repo-id", "me/a")
    assert_one_line_error(r, 1, f"({status})", needle)


def test_server_down_and_offline_mode(evaluated, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    offline = push(evaluated, "--repo-id", "me/a")
    assert_one_line_error(offline, 1, "offline mode (HF_HUB_OFFLINE=1)")
    go_online(monkeypatch)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    down = push(evaluated, "--repo-id", "me/a")
    assert_one_line_error(down, 1, "cannot reach http://127.0.0.1:9")
    # Nothing half-written next to the run.
    assert sorted(p.name for p in (evaluated / "student").iterdir() if p.name.startswith((".", "README"))) == []


def test_bad_arguments(evaluated):
    assert_one_line_error(push(evaluated, "--repo-id", "no-owner", "--dry-run"), 2, "expected OWNER/NAME")
    for bad in ("me/..", "me/x--y", "me/-x"):  # huggingface_hub's own rules, checked by the dry run too
        assert_one_line_error(push(evaluated, "--repo-id", bad, "--dry-run"), 2, f"--repo-id {bad!r}")
    r = run_cli("push", "nowhere/at/all", "--repo-id", "me/a", "--dry-run")
    assert_one_line_error(r, 2, "model not found")
    empty = Path("empty-model")
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    assert_one_line_error(run_cli("push", str(empty), "--repo-id", "me/a", "--dry-run"), 2, "no safetensors")
    assert os.environ.get("HF_TOKEN") is None
