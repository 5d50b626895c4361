"""The recipe the data calls for: few-shot data (at most ``FEW_SHOT`` training queries an intent) trains a
transformer with the few-shot recipe where the config and flags leave it unset; other data, a static student
and a search keep the defaults. ``prepare`` says what it found, and ``run.json`` records the recipe."""

from __future__ import annotations

import json

import pytest
from conftest import few_shot_file, run_cli

from distill_cli.config import load_config
from distill_cli.data.columns import NO_OOS, OOS_TRAINED, OPEN_SET
from distill_cli.data.manifest import FEW_SHOT, Manifest
from distill_cli.training.plan import (
    DISTILL_EPOCHS,
    FEW_SHOT_CUT,
    FEW_SHOT_DISTILL,
    FEW_SHOT_RECIPE,
    FEW_SHOT_SMALL,
    OPEN_SET_DISTILL,
    SMALL_WIDTH,
    make_plan,
)


def manifest(per_intent: float, validation: str, setting: str = NO_OOS) -> Manifest:
    return Manifest(key="k", source="s", text_column="text", label_column="label", setting=setting, splits={},
                    labels=["a", "b"], tokenizer="t", tokenizer_fingerprint="f", max_length=32, seed=42,
                    content_hash="h", validation=validation, per_intent=per_intent)  # fmt: skip


def planned(command: str, data: Manifest, student: str = "minilm-l6", width: int | None = None, **flags):
    cfg = load_config(None, command, {"student": student, "teacher": "t" if command == "distill" else None, **flags})
    return make_plan(cfg, command, data=data, width=width)


@pytest.mark.parametrize("validation", ["given", "carved"])
@pytest.mark.parametrize("setting", [NO_OOS, OPEN_SET, OOS_TRAINED])
def test_five_an_intent_gets_the_few_shot_recipe_with_or_without_validation_and_out_of_scope(validation, setting):
    for command in ("finetune", "distill"):
        plan = planned(command, manifest(5, validation, setting))
        assert {k: getattr(plan.cfg, k) for k in FEW_SHOT_RECIPE} == FEW_SHOT_RECIPE
        assert plan.args.contrastive_weight == FEW_SHOT_RECIPE["contrastive_weight"]
        assert plan.args.num_train_epochs == FEW_SHOT_RECIPE["epochs"] and not plan.args.load_best_model_at_end
        assert plan.recipe.startswith("few-shot data (5 training queries an intent, median)")
        # a student distilled from a teacher model also learns from its answers on variants of each query
        assert plan.cfg.augment == (FEW_SHOT_DISTILL["augment"] if command == "distill" else 0)
        assert plan.cfg.splice == 0  # a student other than the teacher's own layers: no spliced queries
        assert plan.cfg.intent_names is False  # an option: a tie on validation (BENCHMARKS.md, "Student levers")
    assert planned("distill", manifest(5, "carved"), alpha=1.0).cfg.augment == 0  # no teacher's answers
    assert planned("distill", manifest(5, "carved"), teacher_mode="online").cfg.augment == 0


def test_a_few_shot_student_cut_from_its_teacher_also_learns_from_spliced_queries():
    """The teacher's own layers (student = teacher) get ``FEW_SHOT_CUT`` beside the variants; the run says so."""
    cut = planned("distill", manifest(5, "carved"), student="t", student_layers=3, width=SMALL_WIDTH)
    assert (cut.cfg.augment, cut.cfg.splice) == (FEW_SHOT_DISTILL["augment"], FEW_SHOT_CUT["splice"])
    assert cut.recipe.startswith(f"few-shot data (5 training queries an intent, median), a student {SMALL_WIDTH} "
                                 "wide, cut from its teacher: ")  # fmt: skip
    assert cut.recipe.endswith(f"augment 4, splice {FEW_SHOT_CUT['splice']}")
    assert planned("distill", manifest(5, "carved"), student="t", splice=0).cfg.splice == 0  # a flag wins
    assert planned("distill", manifest(5, "carved"), student="t", alpha=1.0).cfg.splice == 0  # no teacher's answers
    assert planned("distill", manifest(100, "given"), student="t", student_layers=3).recipe is None  # not few-shot


@pytest.mark.parametrize("command", ["finetune", "distill"])
def test_a_small_student_learns_faster_on_few_shot_data(command):
    """MiniLM-L6 (384 wide) and its cuts train at ``FEW_SHOT_SMALL``'s rate on few-shot data; a 768-wide model,
    other data and a rate the config or a flag gives keep theirs."""
    small = planned(command, manifest(5, "carved"), width=SMALL_WIDTH)
    assert small.cfg.learning_rate == FEW_SHOT_SMALL["learning_rate"] == small.args.learning_rate
    said = f"few-shot data (5 training queries an intent, median), a student {SMALL_WIDTH} wide: epochs 8"
    assert small.recipe.startswith(said) and "learning_rate 0.0002" in small.recipe
    default = load_config(None, command, {}).learning_rate
    assert planned(command, manifest(5, "carved"), width=768).cfg.learning_rate == default
    assert planned(command, manifest(100, "given"), width=SMALL_WIDTH).cfg.learning_rate == default
    assert planned(command, manifest(5, "carved"), width=SMALL_WIDTH, learning_rate=3e-5).cfg.learning_rate == 3e-5


@pytest.mark.parametrize("validation", ["given", "carved"])
def test_a_hundred_an_intent_keeps_the_defaults(validation):
    finetune, distill = planned("finetune", manifest(100, validation)), planned("distill", manifest(100, validation))
    assert finetune.recipe is None and distill.recipe is None
    assert (finetune.cfg.epochs, distill.cfg.epochs) == (3, DISTILL_EPOCHS)
    assert finetune.cfg.keep_best_epoch and finetune.cfg.contrastive_weight == 0 and distill.cfg.augment == 0
    assert planned("finetune", manifest(FEW_SHOT, "carved")).recipe is not None  # the bound is few-shot
    assert planned("finetune", manifest(FEW_SHOT + 1, "carved")).recipe is None


@pytest.mark.parametrize("validation", ["given", "carved"])
def test_open_set_data_gives_a_distilled_student_the_teachers_answers_on_variants(validation):
    """Fifty an intent, out-of-scope queries in validation or test only: ``distill`` from a teacher model adds
    ``augment`` for a student other than the teacher; the teacher (``finetune``), the teacher's own layers, data
    with out-of-scope training queries or none at all, alpha 1 and a flag keep theirs."""
    plan = planned("distill", manifest(50, validation, OPEN_SET))
    assert plan.cfg.augment == OPEN_SET_DISTILL["augment"] and plan.cfg.epochs == DISTILL_EPOCHS
    assert plan.recipe == ("open-set data (out-of-scope queries in validation or test only) and a student other "
                           f"than the teacher: augment {plan.cfg.augment}")  # fmt: skip
    assert planned("distill", manifest(50, validation, OPEN_SET), student="t", student_layers=3).recipe is None
    assert planned("finetune", manifest(50, validation, OPEN_SET)).recipe is None
    for setting in (NO_OOS, OOS_TRAINED):
        assert planned("distill", manifest(50, validation, setting)).cfg.augment == 0
    assert planned("distill", manifest(50, validation, OPEN_SET), alpha=1.0).cfg.augment == 0
    assert planned("distill", manifest(50, validation, OPEN_SET), augment=1).recipe is None
    both = planned("distill", manifest(5, validation, OPEN_SET))
    assert both.recipe.startswith("few-shot data (5 training queries an intent, median) and open-set data")


def test_what_the_config_or_a_flag_sets_wins_and_a_static_student_keeps_its_own():
    plan = planned("finetune", manifest(5, "carved"), epochs=3, keep_best_epoch=True)
    assert (plan.cfg.epochs, plan.cfg.keep_best_epoch) == (3, True)
    assert plan.cfg.contrastive_weight == FEW_SHOT_RECIPE["contrastive_weight"]  # the rest still applies
    assert plan.recipe.endswith(f"contrastive_weight {FEW_SHOT_RECIPE['contrastive_weight']}")
    everything = {k: v for k, v in FEW_SHOT_RECIPE.items()}
    assert planned("finetune", manifest(5, "carved"), **everything).recipe is None  # nothing left to choose
    static = planned("distill", manifest(5, "carved"), student="static:minilm-l6")
    assert static.recipe is None and static.cfg.contrastive_weight == 0


def test_prepare_says_what_it_found(tiny_bert, tmp_path):
    r = run_cli("prepare", "--dataset", few_shot_file(tmp_path, 5), "--student", tiny_bert, "--json")
    assert r.code == 0, r.stderr
    assert r.json["validation"] == "carved" and r.json["per_intent"] == 4  # one of five held out
    assert "data: 4 training queries an intent (median), few-shot; validation carved from train" in r.stderr
    demo = run_cli("prepare", "--dataset", "demo-intents", "--student", tiny_bert, "--json")
    assert demo.json["validation"] == "given" and demo.json["per_intent"] > FEW_SHOT
    assert "few-shot" not in demo.stderr


def test_a_few_shot_run_says_its_recipe_and_records_it(tiny_bert, tmp_path):
    r = run_cli("finetune", "--dataset", few_shot_file(tmp_path, 5), "--student", tiny_bert, "--epochs", "2",
                "--batch-size", "8", "--max-length", "24", "--name", "few", "--json")  # fmt: skip
    assert r.code == 0, r.stderr
    record = json.loads((tmp_path / "runs" / "few" / "run.json").read_text())
    assert record["recipe"] == r.stderr.split("recipe: ", 1)[1].splitlines()[0]
    assert "keep_best_epoch False" in record["recipe"] and "epochs" not in record["recipe"]  # --epochs given
    assert record["config"]["keep_best_epoch"] is False and record["kept_epoch"] == 2
    assert record["config"]["contrastive_weight"] == FEW_SHOT_RECIPE["contrastive_weight"]


def test_a_few_shot_distill_trains_on_the_variants_its_recipe_adds(tiny_bert, tmp_path):
    """The recipe's settings take effect, not only its record: the data's ``augment`` makes the teacher answer
    variants of every training query, which the student trains on (``run.json``'s ``rows``)."""
    data = few_shot_file(tmp_path, 5)
    common = ("--dataset", data, "--epochs", "1", "--batch-size", "8", "--max-length", "24", "--json")
    assert run_cli("finetune", "--student", tiny_bert, "--name", "t", *common).code == 0
    teacher = tmp_path / "runs" / "t"
    r = run_cli("distill", "--teacher", teacher, "--student", tiny_bert, "--name", "s", *common)
    assert r.code == 0, r.stderr
    record = json.loads((tmp_path / "runs" / "s" / "run.json").read_text())
    assert record["config"]["augment"] == FEW_SHOT_DISTILL["augment"] and "augment 4" in record["recipe"]
    labelled = record["rows"]["labelled"]
    assert record["rows"]["augmented"] > labelled  # about four a query, less the duplicates dropped
    assert "augmented queries" in r.stderr and not record["rows"].get("spliced")
    # the teacher's own layers also train on spliced queries
    r = run_cli("distill", "--teacher", teacher, "--student", teacher, "--student-layers", "1", "--name", "cut",
                *common)  # fmt: skip
    assert r.code == 0, r.stderr
    record = json.loads((tmp_path / "runs" / "cut" / "run.json").read_text())
    assert record["config"]["splice"] == FEW_SHOT_CUT["splice"] and "cut from its teacher" in record["recipe"]
    assert record["rows"]["spliced"] > record["rows"]["labelled"] and record["rows"]["augmented"] > 0
    # flags still win over the recipe: no variants when --augment 0 is given
    r = run_cli("distill", "--teacher", teacher, "--student", tiny_bert, "--name", "s0", "--augment", "0", *common)
    assert r.code == 0, r.stderr
    record = json.loads((tmp_path / "runs" / "s0" / "run.json").read_text())
    assert record["config"]["augment"] == 0 and not (record.get("rows") or {}).get("augmented")


def test_every_default_of_the_plan_is_in_what_distill_run_compares(monkeypatch):
    """``recipe_defaults()`` goes into ``distill run``'s step digests, so that a version whose data recipes differ
    trains the steps again: a change to any of the plan's constants (each listed there by hand) changes it."""
    from distill_cli.training import plan

    before = plan.recipe_defaults()
    constants = [name for name in vars(plan) if name.isupper() and isinstance(getattr(plan, name), (dict, int))]
    constants.remove("STATIC_SEARCH_DEFAULTS")  # a search's ranges: `distill run` does not search
    assert len(constants) == 9, constants  # the static student's DISTILL_AUGMENT and DISTILL_SPLICE were missing
    for name in constants:
        value = getattr(plan, name)
        with monkeypatch.context() as m:
            m.setattr(plan, name, {**value, "changed": 1} if isinstance(value, dict) else value + 1)
            assert plan.recipe_defaults() != before, name
