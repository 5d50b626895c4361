"""The command line as a whole: fast help, one-line errors, tracebacks only with --debug."""

import subprocess
import sys

import pytest
from conftest import run_cli

COMMANDS = [[], ["prepare"], ["finetune"], ["distill"], ["evaluate"], ["export"], ["predict"], ["push"]]
COMMANDS += [["config", "show"]]
HEAVY = ("torch", "transformers", "datasets")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "distill")
def test_help_imports_no_heavy_library(command):
    code = (
        "import sys\nfrom distill_cli.cli import main\n"
        f"try:\n    main({command + ['--help']!r})\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\nassert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout


def test_console_script_and_module_entry_points():
    proc = subprocess.run([sys.executable, "-m", "distill_cli", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "0.1.0"
    bindir = __import__("pathlib").Path(sys.executable).parent
    proc = subprocess.run([str(bindir / "distill"), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "finetune" in proc.stdout and "distill" in proc.stdout


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(tmp_path):
    bad = tmp_path / "data.csv"
    bad.write_text("text,label\nhello,a\nbye,b\n")
    # A directory where a file is expected on output: a failure the CLI does not anticipate.
    (tmp_path / "blocker").write_text("a file, not a folder")
    args = ["prepare", "--dataset", bad, "--student", "/nonexistent-model-dir"]
    plain = run_cli(*args)
    assert plain.code == 2 and "Traceback" not in plain.stderr
    debug = run_cli("--debug", *args)
    assert debug.code == 2 and "Traceback" in debug.stderr


def test_the_resume_hint_is_built_from_the_interrupt_error():
    from pathlib import Path

    from distill_cli.errors import Interrupted

    err = Interrupted(Path("runs/finetune-x-1.partial"), 15, generated_name="finetune-x-1")
    assert err.exit_code == 143 and "runs/finetune-x-1.partial" in str(err)
    hint = err.resume_hint(["finetune", "--overwrite", "--epochs", "3", "--dataset", "my data.csv"])
    assert hint == "resume with: distill finetune --epochs 3 --dataset 'my data.csv' --name finetune-x-1 --resume"
    named = Interrupted(Path("runs/a.partial"), 2)
    again = named.resume_hint(["distill", "--name", "a", "--resume"])
    assert again == "resume with: distill distill --name a --resume"


def test_one_hub_id_rule_for_models_and_datasets(tiny_bert):
    from distill_cli.hub import is_hub_id

    for ok in ("bert-base-uncased", "me/clinc-student", "org/model.v2", "clinc_oos"):
        assert is_hub_id(ok), ok
    for bad in ("./model", "/abs/model", "~/model", "a/b/c", "has space", "", ".hidden"):
        assert not is_hub_id(bad), bad
    # A path-like dataset that does not exist is "not found", never a Hub lookup.
    r = run_cli("prepare", "--dataset", "/no/such/data", "--student", tiny_bert)
    assert r.code == 2 and "dataset not found: /no/such/data" in r.stderr
    r = run_cli("evaluate", "~/nope")
    assert r.code == 2 and "model not found: ~/nope" in r.stderr


def test_every_choice_setting_lists_and_checks_its_choices(monkeypatch):
    import typing

    from conftest import assert_one_line_error

    from distill_cli.config import Config
    from distill_cli.options import DISTILL

    choices = {k: typing.get_args(Config.model_fields[k].annotation) for k in DISTILL}
    choices = {k: v for k, v in choices.items() if v and all(isinstance(c, str) for c in v)}
    assert {"pooling", "teacher_mode", "oos_rule", "head_init"} <= set(choices)
    monkeypatch.setenv("COLUMNS", "250")  # each option on one line
    help_text = run_cli("distill", "--help").stdout
    for key, values in choices.items():
        assert f"--{key.replace('_', '-')} " in help_text and f"<{'|'.join(values)}>" in help_text, key
    assert_one_line_error(run_cli("finetune", "--pooling", "max"), 2, "--pooling max: expected auto, cls or mean")
    assert_one_line_error(run_cli("export", "m", "--format", "tflite"), 2, "--format tflite: expected onnx or torch")
