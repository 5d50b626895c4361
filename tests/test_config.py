"""The typed config: precedence, validation errors (exit 2, one line), and `config show`."""

from pathlib import Path

import pytest
import yaml
from conftest import assert_one_line_error, run_cli

from distill_cli.config import Config, load_config
from distill_cli.errors import UsageError

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_precedence_defaults_file_section_flags(tmp_path):
    cfg_file = write(tmp_path / "c.yaml", "epochs: 6\nalpha: 0.3\nbatch_size: 8\ndistill:\n  alpha: 0.2\n  epochs: 4\n")
    assert load_config().epochs == Config().epochs == 3
    assert load_config(cfg_file).epochs == 6  # file beats defaults
    distill = load_config(cfg_file, "distill")
    assert (distill.alpha, distill.epochs, distill.batch_size) == (0.2, 4, 8)  # section beats top level
    flagged = load_config(cfg_file, "distill", {"epochs": 7, "alpha": None})
    assert (flagged.epochs, flagged.alpha) == (7, 0.2)  # a flag beats the file; an absent flag does not
    assert load_config(None, "finetune").alpha == 1.0  # finetune's own default
    assert load_config(None, "distill").alpha == 0.5


def test_numbers_written_as_strings_are_coerced(tmp_path):
    # PyYAML reads 1e-4 (no dot) as a string.
    cfg = load_config(write(tmp_path / "c.yaml", "learning_rate: 1e-4\n"))
    assert cfg.learning_rate == pytest.approx(1e-4)
    assert isinstance(yaml.safe_load("learning_rate: 1e-4")["learning_rate"], str)


@pytest.mark.parametrize(
    "text, needle",
    [
        ("alfa: 0.5\n", "unknown key 'alfa' (did you mean 'alpha'?)"),
        ("epochs: five\n", "'epochs'"),
        ("alpha: 1.5\n", "'alpha': input should be less than or equal to 1"),
        ("alpha: -0.1\n", "'alpha': input should be greater than or equal to 0"),
        ("temperature: 0\n", "'temperature': input should be greater than 0"),
        ("epochs: 0\n", "'epochs': input should be greater than 0"),
        ("learning_rate: -1e-5\n", "'learning_rate': input should be greater than 0"),
        ("distill:\n  alpha: 2\n", "'alpha'"),
        ("- just\n- a list\n", "expected a mapping"),
        ("epochs: [1, 2\n", "invalid YAML at line"),
    ],
)
def test_bad_config_exits_2_with_one_line(tmp_path, text, needle):
    cfg = write(tmp_path / "bad.yaml", text)
    result = run_cli("config", "show", "--config", cfg, "--command", "distill")
    assert_one_line_error(result, 2, needle, str(cfg))


def test_bad_flag_value_exits_2(tmp_path):
    assert_one_line_error(run_cli("config", "show", "--alpha", "3"), 2, "'alpha'")
    assert_one_line_error(run_cli("config", "show", "--epochs", "x"), 2, "--epochs")
    assert_one_line_error(run_cli("finetune", "--no-such-flag"), 2, "--no-such-flag")


def test_missing_config_file_exits_2():
    assert_one_line_error(run_cli("config", "show", "--config", "nope.yaml"), 2, "config file not found: nope.yaml")


def test_config_show_round_trips_and_applies_flags(tmp_path):
    cfg_file = write(tmp_path / "c.yaml", "epochs: 3\naliases:\n  big: some/model\ndistill:\n  temperature: 7\n")
    result = run_cli("config", "show", "--config", cfg_file, "--command", "distill", "--lr", "3e-5", "--seed", "7")
    assert result.code == 0, result.stderr
    shown = yaml.safe_load(result.stdout)
    assert shown["epochs"] == 3 and shown["temperature"] == 7 and shown["seed"] == 7
    assert shown["learning_rate"] == pytest.approx(3e-5)
    assert shown["aliases"] == {"big": "some/model"}
    # What it prints is a valid config that means the same thing.
    again = load_config(write(tmp_path / "shown.yaml", result.stdout))
    assert again == load_config(cfg_file, "distill", {"learning_rate": 3e-5, "seed": 7})


@pytest.mark.parametrize("name", ["demo.yaml", "clinc-minilm-offline.yaml", "clinc-bert-distilbert.yaml"])
def test_shipped_configs_are_valid(name):
    from distill_cli.search_space import load_search_settings

    for command in ("prepare", "finetune", "distill", "search", "evaluate"):
        cfg = load_config(REPO / "configs" / name, command)
        assert cfg.dataset
    assert load_config(REPO / "configs" / name, "finetune").alpha == 1.0
    # search trains with the distill section's settings; its own section is the space.
    assert load_config(REPO / "configs" / name, "search") == load_config(REPO / "configs" / name, "distill")
    assert load_search_settings(REPO / "configs" / name, {}).ranges()["alpha"] == (0.0, 1.0)


def test_the_benchmark_study_config_is_valid():
    from distill_cli.search_space import load_search_settings

    settings = load_search_settings(REPO / "benchmarks" / "search_clinc.yaml", {"trials": 3})
    assert settings.trials == 3 and settings.ranges()["epochs"] == (1, 3)


def test_book_config_holds_the_book_recipe():
    cfg = load_config(REPO / "configs" / "clinc-bert-distilbert.yaml", "finetune")
    assert cfg.aliases["bert-clinc"] == "transformersbook/bert-base-uncased-finetuned-clinc"
    assert (cfg.student, cfg.teacher, cfg.dataset) == ("distilbert-base-uncased", "bert-clinc", "clinc_oos:plus")
    assert (cfg.batch_size, cfg.learning_rate, cfg.epochs, cfg.weight_decay) == (48, 2e-5, 5, 0.01)


def test_usage_error_is_exit_code_2():
    with pytest.raises(UsageError) as info:
        load_config(None, None, {"alpha": 9})
    assert info.value.exit_code == 2


def test_flags_are_the_config_fields_with_their_own_help():
    import typer

    from distill_cli import options
    from distill_cli.cli import app
    from distill_cli.config import COMMANDS

    group = typer.main.get_command(app)
    assert set(group.commands) == {*COMMANDS, "config", "run"}  # the config's sections, and the steps in one
    assert set(options.FLAGS_OF) == {*COMMANDS, "run"}
    for name, keys in options.FLAGS_OF.items():
        params = {p.name: p for p in group.commands[name].params}
        for key in keys:
            assert params[key].help == Config.model_fields[key].description, (name, key)
            assert any(o.startswith(f"--{key.replace('_', '-')}") for o in params[key].opts), params[key].opts
    # The flag types follow the fields: a bad value is refused by the Config, naming the key.
    assert_one_line_error(run_cli("config", "show", "--teacher-mode", "sometimes"), 2, "teacher_mode")
    shown = yaml.safe_load(run_cli("config", "show", "--no-group-by-length", "--lr", "0.5", "-T", "3").stdout)
    assert (shown["group_by_length"], shown["learning_rate"], shown["temperature"]) == (False, 0.5, 3.0)


def test_config_show_names_the_commands_it_knows():
    r = run_cli("config", "show", "--command", "train")
    assert_one_line_error(r, 2, "expected prepare, finetune, distill, search, evaluate, export, predict or push")


def test_distill_trains_a_transformer_student_8_epochs_unless_told_otherwise():
    from distill_cli.config import load_config
    from distill_cli.training.plan import make_plan

    def epochs(command, student, **flags):
        cfg = load_config(None, command, {"student": student, "teacher": "t", **flags})
        return make_plan(cfg, command).cfg.epochs

    assert epochs("distill", "minilm-l6") == 8 and epochs("distill", "minilm-l6", epochs=2) == 2
    assert epochs("finetune", "minilm-l6") == 3  # the Trainer's
    assert epochs("distill", "static:minilm-l6") == 30  # a static student's own default


def test_a_static_student_distilled_learns_from_augmented_and_spliced_queries_unless_told_otherwise():
    from distill_cli.config import load_config
    from distill_cli.training.plan import make_plan

    def rows(command, student, **flags):
        cfg = load_config(None, command, {"student": student, "teacher": "t", **flags})
        planned = make_plan(cfg, command).cfg
        return planned.augment, planned.splice

    assert rows("distill", "static:minilm-l6") == (2, 1)
    assert rows("distill", "static:minilm-l6", augment=0) == (0, 1)  # told otherwise, each on its own
    assert rows("distill", "static:minilm-l6", splice=3) == (2, 3)
    assert rows("distill", "static:minilm-l6", alpha=1.0) == (0, 0)  # no teacher's answers to learn from
    assert rows("distill", "minilm-l6") == (0, 0) and rows("finetune", "static:minilm-l6") == (0, 0)


def test_every_flag_help_shows_a_real_default():
    """A default made by a factory (a list) is shown as the value, or not at all."""
    import typer

    from distill_cli.cli import app

    group = typer.main.get_command(app)
    helps = [p.help or "" for c in group.commands.values() for p in getattr(c, "params", [])]
    assert helps and not [h for h in helps if "PydanticUndefined" in h]
