"""`distill search`: real Optuna studies (journal file storage) over real Trainer runs on tiny models."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import TRAIN_FLAGS, assert_one_line_error, run_cli

SPACE = {"epochs": [1, 2], "alpha": [0.0, 1.0], "temperature": [1.0, 8.0], "learning_rate": [1e-3, 1e-2]}


def write_config(tmp_path: Path, space: dict | None = None, **top) -> Path:
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump({**top, "search": SPACE if space is None else space}))
    return path


def search(runs: Path, student: Path, config: Path, *extra: str):
    flags = ("--config", config, "--runs-dir", runs, "--teacher", "teacher", "--student", student, "--name", "study")
    return run_cli("search", *TRAIN_FLAGS, *flags, *extra)


def journal(runs: Path):
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    return JournalStorage(JournalFileBackend(str(runs / "study" / "study.journal")))


def load_study(runs: Path):
    import optuna

    return optuna.load_study(study_name="study", storage=journal(runs))


def test_a_study_keeps_its_best_model_and_a_config_that_trains_it_again(runs, tiny_distilbert, tmp_path):
    r = search(runs, tiny_distilbert, write_config(tmp_path), "--trials", "3", "--json")
    assert r.code == 0, r.stderr
    report = r.json
    assert sum(report["trials"].values()) == 3 and report["added"] == 3
    best = report["best"]
    row = next(t for t in report["table"] if t["trial"] == best["trial"])
    assert row["state"] == "complete" and row["value"] == max(t["value"] or 0 for t in report["table"])
    assert set(best["params"]) == set(SPACE)
    # Only the best model stays: a run folder like any other, no trial folders.
    folder = runs / "study"
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "best",
        "best.yaml",
        "study.journal",
    ]
    record = json.loads((folder / "best" / "run.json").read_text())
    assert record["command"] == "distill" and record["search"]["trial"] == best["trial"]
    assert r.json["objective"] == "validation expected_accuracy"  # what is deployed: accuracy with the rule
    assert [e["expected_accuracy"] for e in record["epochs"]] == pytest.approx(row["epoch_values"])
    # best.yaml trains the same student again: same seed, same validation accuracy (and loss) every epoch.
    again = run_cli("distill", "--config", folder / "best.yaml", "--name", "again", "--json")
    assert again.code == 0, again.stderr
    epochs = again.json["epochs"]
    assert [e["expected_accuracy"] for e in epochs] == pytest.approx(row["epoch_values"], abs=1e-9)
    assert [e["loss"] for e in epochs] == pytest.approx([e["loss"] for e in record["epochs"]], abs=1e-5)
    # evaluate takes the kept model directly.
    ev = run_cli("evaluate", folder / "best", "--split", "validation", "--latency-runs", "2", "--json")
    assert ev.code == 0, ev.stderr
    assert ev.json["models"][0]["accuracy"] == pytest.approx(record["metrics"]["accuracy"])


def test_the_same_command_continues_the_study_with_new_trials(runs, tiny_distilbert, tmp_path):
    config = write_config(tmp_path)
    assert search(runs, tiny_distilbert, config, "--trials", "2").code == 0
    r = search(runs, tiny_distilbert, config, "--trials", "1", "--json")
    assert r.code == 0, r.stderr
    trials = sorted(r.json["table"], key=lambda t: t["trial"])
    assert [t["trial"] for t in trials] == [0, 1, 2] and r.json["added"] == 1
    assert trials[2]["params"] not in (trials[0]["params"], trials[1]["params"])  # new values, not a replay
    # The same seed draws the same first trials in a new study.
    other = search(runs, tiny_distilbert, config, "--trials", "2", "--name", "study2", "--json")
    assert sorted((t["params"] for t in other.json["table"]), key=str) == sorted(
        (t["params"] for t in trials[:2]), key=str
    )
    # A study is continued only with the settings it was started with.
    changed = write_config(tmp_path, {**SPACE, "alpha": [0.0, 0.5]})
    assert_one_line_error(search(runs, tiny_distilbert, changed, "--trials", "1"), 2, "other settings", "space.alpha")
    r = search(runs, tiny_distilbert, config, "--trials", "1", "--epochs", "7")
    assert_one_line_error(r, 2, "other settings")


def test_two_workers_share_one_study_without_losing_or_repeating_trials(runs, tiny_distilbert, tmp_path):
    config = write_config(tmp_path)
    args = [sys.executable, "-m", "distill_cli", "search", *TRAIN_FLAGS, "--config", str(config)]
    args += ["--runs-dir", str(runs), "--teacher", "teacher", "--student", str(tiny_distilbert), "--name", "study"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen([*args, "--trials", "2"], env=env, stderr=subprocess.PIPE) for _ in range(2)]
    for w in workers:
        assert w.wait(timeout=600) == 0, w.stderr.read().decode()[-2000:]
    trials = load_study(runs).get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 4  # the workers drew different trials
    best = json.loads((runs / "study" / "best" / "run.json").read_text())["search"]
    assert best["value"] == max(t.value for t in trials if t.state.name == "COMPLETE")


def test_the_teacher_is_loaded_once_per_study_and_never_by_a_trial(runs, tiny_distilbert, tmp_path, monkeypatch):
    from distill_cli import modeling

    loads = []
    real = modeling.load_for_inference

    def counted(ref, cfg):
        if not ref.spec.endswith(".partial"):  # not a trial's own student, read back to choose its rule
            loads.append(ref.spec)
        return real(ref, cfg)

    monkeypatch.setattr(modeling, "load_for_inference", counted)
    config = write_config(tmp_path)
    r = search(runs, tiny_distilbert, config, "--trials", "3", "--json")
    assert r.code == 0, r.stderr
    assert loads == ["teacher"] and r.json["teacher_cache_reused"] is False  # its logits, once, for 3 trials
    r = search(runs, tiny_distilbert, config, "--trials", "2", "--json")
    assert r.code == 0, r.stderr
    assert loads == ["teacher"] and r.json["teacher_cache_reused"] is True  # then read from the cache


def test_a_trial_below_the_median_is_pruned(runs, tiny_distilbert, tmp_path):
    import optuna
    from optuna.distributions import FloatDistribution, IntDistribution

    # Three earlier trials that reached 100% validation accuracy at every epoch: any real trial is below
    # their median after its first epoch and must stop there.
    (runs / "study").mkdir()
    space = {"epochs": [2, 3], "learning_rate": [1e-3, 1e-2]}
    study = optuna.create_study(study_name="study", storage=journal(runs), direction="maximize")
    distributions = {"epochs": IntDistribution(2, 3), "learning_rate": FloatDistribution(1e-3, 1e-2, log=True)}
    for _ in range(3):
        study.add_trial(
            optuna.trial.create_trial(
                params={"epochs": 3, "learning_rate": 5e-3},
                distributions=distributions,
                value=1.0,
                intermediate_values={1: 1.0, 2: 1.0, 3: 1.0},
            )
        )
    space_only = {k: None for k in ("alpha", "temperature")} | space
    r = search(runs, tiny_distilbert, write_config(tmp_path, space_only), "--trials", "1", "--json")
    assert r.code == 0, r.stderr
    row = next(t for t in r.json["table"] if t["trial"] == 3)
    assert row["state"] == "pruned" and len(row["epoch_values"]) == 1
    assert r.json["epochs_run"] == 1 and r.json["epochs_planned"] == row["params"]["epochs"] >= 2
    assert r.json["epochs_saved_by_pruning"] == pytest.approx(1 - 1 / row["params"]["epochs"], abs=1e-4)
    assert not (runs / "study" / "best").exists()  # a pruned trial's model is never kept


def test_a_failed_trial_is_recorded_and_the_study_goes_on(runs, tiny_distilbert, tmp_path, monkeypatch):
    from distill_cli.commands import search as command

    real, calls = command.build_trainer, []

    def out_of_memory_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(*args, **kwargs)

    monkeypatch.setattr(command, "build_trainer", out_of_memory_once)
    r = search(runs, tiny_distilbert, write_config(tmp_path), "--trials", "2", "--json")
    assert r.code == 0, r.stderr
    states = {t["trial"]: t["state"] for t in r.json["table"]}
    assert states[0] == "fail" and states[1] in ("complete", "pruned")
    assert "out of memory" in next(t for t in r.json["table"] if t["trial"] == 0)["error"]
    assert "trial 0 failed: RuntimeError: CUDA out of memory" in r.stderr


def test_ctrl_c_ends_after_the_current_trial_and_says_how_to_continue(runs, tiny_distilbert, tmp_path, monkeypatch):
    from distill_cli.commands import search as command

    real = command.build_student

    def interrupt_during_the_trial(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(command, "build_student", interrupt_during_the_trial)
    r = search(runs, tiny_distilbert, write_config(tmp_path), "--trials", "3")
    assert r.code == 130
    last = [ln for ln in r.stderr.splitlines() if ln.strip()][-1]
    assert "interrupted after 1 trial(s)" in last and "continue it with: distill search" in last
    trials = load_study(runs).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"]  # the trial under way finished; no other began


@pytest.mark.parametrize(
    "space, extra, needles",
    [
        ({"alpha": [1, 0]}, (), ("search.alpha", "inverted")),
        ({"temperature": [4, 4]}, (), ("search.temperature", "empty")),
        ({"alpah": [0, 1]}, (), ("unknown key 'search.alpah'", "search.alpha")),
        ({"alpha": [0, 2]}, (), ("search.alpha", "2")),
        ({"learning_rate": [0, 1e-3]}, (), ("search.learning_rate",)),
        ({"epochs": [1.5, 3]}, (), ("search.epochs",)),
        ({"student_layers": [1, 9]}, (), ("search.student_layers", "has 2")),
        ({k: None for k in SPACE}, (), ("nothing to search",)),
        (SPACE, ("--teacher-mode", "online"), ("teacher_mode cached",)),
        (SPACE, ("--report-to", "nosuch"), ("report_to nosuch",)),
        (SPACE, ("--storage", "nowhere"), ("--storage nowhere", "RDB URL")),
    ],
)
def test_bad_search_settings_exit_2_before_any_compute(runs, tiny_distilbert, tmp_path, space, extra, needles):
    r = search(runs, tiny_distilbert, write_config(tmp_path, space), "--trials", "1", *extra)
    assert_one_line_error(r, 2, *needles)
    assert not (runs / "study").exists()


def test_a_storage_url_never_prints_its_password(runs, tiny_distilbert, tmp_path):
    r = search(runs, tiny_distilbert, write_config(tmp_path), "--storage", "postgresql://me:s3cret@127.0.0.1:9/db")
    assert r.code in (1, 2) and "s3cret" not in r.stderr + r.stdout
    assert "postgresql://me:***@127.0.0.1:9/db" in r.stderr


def test_the_plot_shows_history_and_importances(runs, tiny_distilbert, tmp_path):
    r = search(runs, tiny_distilbert, write_config(tmp_path), "--trials", "3", "--plot", tmp_path / "study.png")
    assert r.code == 0, r.stderr
    assert (tmp_path / "study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_to_passes_through_to_the_trainer(tiny_bert):
    flags = ("--student", tiny_bert, "--epochs", "1", "--name", "tb", "--report-to", "tensorboard")
    r = run_cli("finetune", *TRAIN_FLAGS, *flags)
    assert r.code == 0, r.stderr
    assert list(Path("runs/tb").rglob("events.out.tfevents*"))  # TensorBoard got the run's logs
    r = run_cli("finetune", *TRAIN_FLAGS, "--student", tiny_bert, "--name", "x", "--report-to", "mlflow")
    assert_one_line_error(r, 2, "report_to mlflow", "not installed")
    assert not Path("runs/x.partial").exists()


def test_an_rdb_url_holds_the_study(runs, tiny_distilbert, tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path / 'studies.db'}"
    r = search(runs, tiny_distilbert, write_config(tmp_path), "--trials", "2", "--storage", url, "--json")
    assert r.code == 0, r.stderr
    assert r.json["storage"] == url and not (runs / "study" / "study.journal").exists()
    trials = optuna.load_study(study_name="study", storage=url).get_trials()
    assert len(trials) == 2 and (runs / "study" / "best.yaml").is_file()


def test_two_workers_share_one_study_on_a_real_postgresql_server(tiny_runs, tiny_distilbert, postgres_url, tmp_path):
    """Two search workers, two processes with their own runs folders, on one study in PostgreSQL: both
    finish, the study holds the sum of their trials, each best.yaml names a complete trial of it (the one
    written last, the study's best), and the password is never printed."""
    import shutil

    import optuna

    config = write_config(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = []
    for k in range(2):
        runs = tmp_path / f"runs-{k}"
        shutil.copytree(tiny_runs, runs)
        args = [sys.executable, "-m", "distill_cli", "search", *map(str, TRAIN_FLAGS), "--config", str(config)]
        args += ["--runs-dir", str(runs), "--teacher", "teacher", "--student", str(tiny_distilbert)]
        args += ["--name", "study", "--storage", postgres_url, "--trials", "2", "--json"]
        workers.append(subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    outputs = [w.communicate(timeout=600) for w in workers]
    for w, (out, err) in zip(workers, outputs):
        assert w.returncode == 0, err.decode()[-2000:]
        assert "s3cret-pw" not in out.decode() + err.decode()
    trials = optuna.load_study(study_name="study", storage=postgres_url).get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 4  # the workers drew different trials
    best = max((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    by_number, written = {t.number: t for t in trials}, []
    for k, (out, _) in enumerate(outputs):
        report = json.loads(out)
        assert report["storage"] == postgres_url.replace("s3cret-pw", "***")
        path = tmp_path / f"runs-{k}" / "study" / "best.yaml"
        best_yaml = path.read_text()
        named = re.search(r"trial (\d+), validation expected accuracy with the rule (\d\.\d{4})", best_yaml)
        trial = by_number[int(named[1])]  # a complete trial of the shared study, with its value
        assert trial.state.name == "COMPLETE" and f"{trial.value:.4f}" == named[2]
        assert "s3cret-pw" not in best_yaml
        written.append((path.stat().st_mtime_ns, trial.number))
    # Each worker writes the best it knows when it ends; the one that ends last has seen every trial complete.
    assert max(written)[1] == best.number
    # A wrong password: one line, exit 1, the password not shown.
    wrong = postgres_url.replace("s3cret-pw", "wr0ng-pw")
    r = search(tmp_path / "runs-0", tiny_distilbert, config, "--storage", wrong, "--name", "other")
    assert_one_line_error(r, 1, "cannot open the study database", "distill:***@")
    assert "wr0ng-pw" not in r.stderr + r.stdout
