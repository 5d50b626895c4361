"""The typed records one command hands another (run.json, export.json, eval_results.json, manifest.json), and
the one pre-flight check of the training commands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import TRAIN_FLAGS, assert_one_line_error, run_cli


def test_each_record_round_trips_and_its_public_copy_holds_no_local_path(runs, tmp_path):
    from distill_cli.data.manifest import Manifest
    from distill_cli.records import EvalResults, ExportRecord
    from distill_cli.runs import RunRecord

    assert run_cli("evaluate", "teacher", "student", "--runs-dir", runs, "--latency-runs", "2").code == 0
    out = tmp_path / "exported"
    assert run_cli("export", "student", "--runs-dir", runs, "--format", "torch", "-o", out).code == 0
    prepared = Path(RunRecord.read(runs / "student").dataset.path)
    for record_type, folder in ((RunRecord, runs / "student"), (EvalResults, runs / "student"),
                                (ExportRecord, out), (RunRecord, out), (Manifest, prepared)):  # fmt: skip
        record = record_type.read(folder)
        assert record is not None, (record_type, folder)
        copy = tmp_path / "copy" / record_type.__name__
        copy.mkdir(parents=True, exist_ok=True)
        if record_type is Manifest:
            (copy / "manifest.json").write_text(record.model_dump_json())
        else:
            record.write(copy)
        assert record_type.read(copy) == record
        if hasattr(record, "public"):
            public = record.public().decode()
            assert str(tmp_path) not in public and "/tmp/" not in public, record_type
            assert "data_checks" not in public  # example queries of the user's data stay home
            (copy / record_type.FILE).write_bytes(record.public())
            assert record_type.read(copy) is not None  # still a record the tool reads
    # The file evaluate wrote keeps its keys: the report's, and this model's own result.
    stored = json.loads((runs / "student" / "eval_results.json").read_text())
    assert {"split", "dataset", "examples", "threads", "models", "result"} <= set(stored)
    assert "agreement" not in stored["models"][0] and "agreement" in stored["result"]


def test_a_run_folder_of_the_earlier_format_still_reads(runs):
    """An export.json without labels, and a manifest and run.json as older versions wrote them."""
    from distill_cli.records import ExportRecord

    old = {"parent": "student", "format": "onnx", "quantize": "none", "trim_vocab": False, "opset": 17,
           "size_mb": 0.2, "checks": {}}  # fmt: skip
    from distill_cli.data.manifest import Manifest
    from distill_cli.runs import RunRecord

    (runs / "x").mkdir()
    (runs / "x" / "export.json").write_text(json.dumps(old))
    assert ExportRecord.read(runs / "x").labels is None
    # run.json with an export record of that time, and a manifest as prepare wrote it (a json.dumps dict).
    record = json.loads((runs / "student" / "run.json").read_text())
    (runs / "x" / "run.json").write_text(json.dumps({**record, "export": old}, indent=2))
    assert RunRecord.read(runs / "x").export.parent == "student"
    prepared = Path(record["dataset"]["path"])
    manifest = json.loads((prepared / "manifest.json").read_text())
    folder = runs / "old-prepared"
    shutil.copytree(prepared, folder)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    read = Manifest.read(folder)
    assert read.labels == record["labels"] and read.verify(folder)[1] is None
    r = run_cli("evaluate", "student", "--runs-dir", runs, "--dataset", folder, "--latency-runs", "1")
    assert r.code == 0, r.stderr


def test_the_preflight_check_names_every_problem_before_any_compute(runs, tiny_bert, tmp_path):
    static = f"static:{tiny_bert}"
    # A static student with a student_layers search range: refused in search as in distill.
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"search": {"epochs": [1, 2], "student_layers": [1, 2]}}))
    flags = ("--config", tmp_path / "s.yaml", "--runs-dir", runs, "--teacher", "teacher", "--student", static)
    r = run_cli("search", *TRAIN_FLAGS, *flags, "--name", "s")
    assert_one_line_error(r, 2, "search.student_layers: a static student has no layers")
    r = run_cli("distill", *TRAIN_FLAGS, "--runs-dir", runs, "--teacher", "teacher", "--student", static,
                "--student-layers", "2", "--name", "d")  # fmt: skip
    assert_one_line_error(r, 2, "a static student has no layers")
    # Two problems at once: both named, in one line.
    r = run_cli("distill", *TRAIN_FLAGS, "--runs-dir", runs, "--teacher", "teacher", "--student", static,
                "--student-layers", "2", "--teacher-mode", "online", "--report-to", "nosuch")  # fmt: skip
    assert_one_line_error(r, 2, "static student has no layers", "drop --teacher-mode online", "report_to nosuch")
    r = run_cli("search", *TRAIN_FLAGS, *flags, "--teacher-mode", "online", "--transfer-set", tmp_path / "no.txt")
    assert_one_line_error(r, 2, "search.student_layers", "teacher_mode cached", "--transfer-set", "no such file")
    (tmp_path / "f.yaml").write_text("augment: 2\n")  # finetune has no --augment flag; a config may set it
    r = run_cli("finetune", *TRAIN_FLAGS, "--config", tmp_path / "f.yaml", "--student", tiny_bert, "--alpha", "0.5")
    assert_one_line_error(r, 2, "alpha=0.5 needs a teacher", "rows that only the teacher labels")
    assert sorted(p.name for p in runs.iterdir()) == ["student", "teacher"]  # no run or study folder began


@pytest.mark.parametrize("command", ["finetune", "distill"])
def test_one_plan_holds_what_the_run_derives(tiny_bert, command):
    from distill_cli.config import load_config
    from distill_cli.training.plan import make_plan

    cfg = load_config(None, command, {"student": str(tiny_bert), "alpha": 0.3 if command == "distill" else None,
                                       "teacher": "t" if command == "distill" else None})  # fmt: skip
    plan = make_plan(cfg, command)
    assert plan.alpha == (0.3 if command == "distill" else 1.0) and plan.args.alpha == plan.alpha
    assert plan.teacher_logits == (command == "distill") and not plan.static
    assert plan.rank == 0 and plan.world_size == 1 and plan.is_main
    static = make_plan(cfg.model_copy(update={"student": f"static:{tiny_bert}"}), command)
    assert static.static and static.cfg.learning_rate == 1e-3 and static.args.label_names == ["labels"]


def test_a_run_interrupted_before_patience_was_recorded_still_resumes(tmp_path):
    """An older mark holds ``patience: null`` for a run that stopped with the default (2 for a transformer):
    the same run resumes with the default written out; another patience is refused, naming it."""
    from distill_cli.config import Config
    from distill_cli.errors import UsageError
    from distill_cli.runs import PARTIAL_MARK, RunFolder, check_same_settings

    run = RunFolder(final=tmp_path / "cut", generated=False)
    run.partial.mkdir()
    old = Config(student="minilm-l6").training_settings()
    assert old["patience"] is None and old["keep_best_epoch"] is True
    (run.partial / PARTIAL_MARK).write_text(json.dumps({"distill_run": "in progress", "settings": old}))
    run.settings = Config(student="minilm-l6", patience=2).training_settings()
    check_same_settings(run)  # no error: the same run
    run.settings = Config(student="minilm-l6", patience=3).training_settings()
    with pytest.raises(UsageError, match="patience 2 → 3"):
        check_same_settings(run)


def test_an_evaluation_written_before_the_typed_report_reads_and_writes_back_byte_for_byte(tmp_path):
    """``fixtures/before-typed-report``: an ``eval_results.json`` written by the version before the report was
    typed end to end (a demo run's, its lists cut short). Every part reads as a typed field, and writing it
    again gives the same bytes."""
    from distill_cli.records import Confusion, EvalResults, IntentRow, RuleResult, ScoreHistogram, Separation

    folder = Path(__file__).parent / "fixtures" / "before-typed-report"
    record = EvalResults.read(folder)
    for m in [*record.models, record.result]:
        assert isinstance(m.oos_rule, RuleResult) and isinstance(m.confusion, Confusion)
        assert all(isinstance(r, IntentRow) for r in m.per_intent) and m.per_intent
        assert isinstance(m.score_histogram, ScoreHistogram)
        assert all(isinstance(s, Separation) for s in m.separation.values()) and m.separation
    assert record.models[1].intent_losses and record.models[1].intent_losses[0].lost_pt is not None
    record.write(tmp_path)
    assert (tmp_path / EvalResults.FILE).read_bytes() == (folder / EvalResults.FILE).read_bytes()
