"""The core trainer: the loss, gradient accumulation, the teacher-logit cache, student initialisation,
run folders, interruption and resume, determinism, and several processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TRAIN_FLAGS, assert_one_line_error, distill_from_teacher, run_cli

from distill_cli.training import trainer as core
from distill_cli.training.callbacks import RichProgress
from distill_cli.training.loss import distillation_loss
from distill_cli.training.teacher_cache import compute_logits
from distill_cli.training.trainer import DistillationTrainer, DistillationTrainingArguments

# --------------------------------------------------------------------------------------------- the loss


def test_loss_matches_the_formula():
    torch.manual_seed(0)
    s, t, y = torch.randn(6, 5), torch.randn(6, 5), torch.tensor([0, 1, 2, 3, 4, 0])
    alpha, temp = 0.3, 4.0
    ce = -torch.log_softmax(s, -1)[torch.arange(6), y].mean()
    p_t, log_p_s = torch.softmax(t / temp, -1), torch.log_softmax(s / temp, -1)
    kl = (p_t * (p_t.log() - log_p_s)).sum(-1).mean()  # KL(teacher || student), averaged over the batch
    expected = alpha * ce + (1 - alpha) * temp**2 * kl
    assert torch.allclose(distillation_loss(s, y, t, alpha, temp), expected, atol=1e-6)
    assert torch.allclose(distillation_loss(s, y, None, 1.0, temp), ce, atol=1e-6)  # alpha 1 = fine-tuning
    assert distillation_loss(s, y, s.clone(), 0.0, temp).item() == pytest.approx(0.0, abs=1e-6)


def _tiny_setup(tiny_bert, tmp_path, **arg_overrides):
    """A tiny no-dropout student, the demo data tokenized for it, and teacher logits from another tiny model."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from distill_cli.config import Config
    from distill_cli.data.prepared import prepare

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    prepared = prepare(Config(dataset="demo-intents", max_length=24), tok, str(tiny_bert))
    labels = prepared.label_names
    torch.manual_seed(1)
    teacher = AutoModelForSequenceClassification.from_pretrained(
        tiny_bert, num_labels=len(labels), ignore_mismatched_sizes=True
    )
    train = core.add_row_and_length(prepared.datasets["train"].select(range(32)))
    logits = compute_logits(teacher, tok, list(train["text"]), 24)

    def student():
        torch.manual_seed(2)
        return AutoModelForSequenceClassification.from_pretrained(
            tiny_bert,
            num_labels=len(labels),
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            ignore_mismatched_sizes=True,
        )

    def args(**kw):
        base = dict(
            output_dir=str(tmp_path / "out"),
            report_to="none",
            use_cpu=True,
            disable_tqdm=True,
            remove_unused_columns=False,
            train_sampling_strategy="sequential",
            learning_rate=0.1,
            optim="sgd",
            weight_decay=0.0,
            lr_scheduler_type="constant",
            alpha=0.4,
            temperature=3.0,
            save_strategy="no",
            logging_steps=1,
            max_grad_norm=0.0,
        )  # no clipping: see raw updates
        return DistillationTrainingArguments(**{**base, **arg_overrides, **kw})

    return core.DistillCollator(tok, logits), train, teacher, student, args


def _one_step(trainer_cls, collator, train, student, args):
    model = student()
    t = trainer_cls(model=model, args=args, train_dataset=train, data_collator=collator)
    t.train()
    return torch.cat([p.detach().flatten() for p in model.parameters()]), t.state.log_history[0]["loss"]


def test_gradient_accumulation_gives_the_same_update(tiny_bert, tmp_path):
    collator, train, _, student, args = _tiny_setup(tiny_bert, tmp_path)
    one = args(per_device_train_batch_size=8, gradient_accumulation_steps=1, max_steps=1)
    four = args(per_device_train_batch_size=2, gradient_accumulation_steps=4, max_steps=1)
    w1, loss1 = _one_step(DistillationTrainer, collator, train, student, one)
    w4, loss4 = _one_step(DistillationTrainer, collator, train, student, four)
    assert loss1 == pytest.approx(loss4, rel=1e-5)
    assert torch.allclose(w1, w4, atol=1e-6)

    # The pitfall this guards against: without loss_is_scaled_for_ga = False, GA=4 steps 4x too far.
    class Unscaled(DistillationTrainer):
        loss_is_scaled_for_ga = None

    w4_bad, _ = _one_step(Unscaled, collator, train, student, four)
    w0 = torch.cat([p.detach().flatten() for p in student().parameters()])
    assert torch.allclose(w4_bad - w0, 4 * (w1 - w0), atol=1e-5)


def test_cached_and_online_teacher_give_the_same_loss(tiny_bert, tmp_path):
    collator, train, teacher, student, args = _tiny_setup(tiny_bert, tmp_path)
    batch = collator([train[i] for i in range(16)])
    assert batch[core.TEACHER_LOGITS].shape == (16, teacher.config.num_labels)
    model = student().train()
    cached = DistillationTrainer(model=model, args=args(), data_collator=collator)
    online = DistillationTrainer(model=model, args=args(), teacher_model=teacher)
    loss_cached = cached.compute_loss(model, batch)
    loss_online = online.compute_loss(model, {k: v for k, v in batch.items() if k != core.TEACHER_LOGITS})
    assert loss_cached.item() == pytest.approx(loss_online.item(), abs=1e-5)


# ------------------------------------------------------------------------------------ commands and runs


def _finetune(student, name, *extra):
    return run_cli("finetune", *TRAIN_FLAGS, "--student", student, "--epochs", "2", "--name", name, "--json", *extra)


def test_run_folder_contents_and_json(runs):
    run = runs / "student"
    names = sorted(p.name for p in run.iterdir())
    assert "model.safetensors" in names and "config.json" in names and "tokenizer.json" in names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl")) or n.startswith("checkpoint")]
    summary = json.loads((run / "run.json").read_text())
    assert summary["command"] == "distill" and summary["teacher"]["spec"] == "teacher"
    assert summary["student"]["layers_kept"] == [0, 3]
    assert summary["dataset"]["manifest_hash"] and summary["seed"] == 42
    assert set(summary["versions"]) == {"python", "torch", "transformers", "distill"}
    assert summary["train_s"] > 0 and summary["teacher_cache_s"] > 0
    assert [e["epoch"] for e in summary["epochs"]] == [1, 2, 3, 4]
    assert {"accuracy", "in_scope_accuracy", "oos_recall", "macro_f1"} <= set(summary["metrics"])
    # The student carries the teacher's labels, in the teacher's order.
    teacher_cfg = json.loads((runs / "teacher" / "config.json").read_text())
    student_cfg = json.loads((run / "config.json").read_text())
    assert student_cfg["id2label"] == teacher_cfg["id2label"] and student_cfg["num_hidden_layers"] == 2
    assert summary["labels"] == [teacher_cfg["id2label"][str(i)] for i in range(len(summary["labels"]))]


def test_run_json_is_read_back_through_its_typed_record(runs, tmp_path):
    from distill_cli.runs import RunRecord, is_run

    record = RunRecord.read(runs / "student")
    assert record.model_dump(mode="json") == json.loads((runs / "student" / "run.json").read_text())
    assert record.teacher.spec == "teacher" and record.student.layers_kept == [0, 3]
    assert record.metrics == record.epochs[-1] and record.labels[record.labels.index("oos")] == "oos"
    assert RunRecord.read(runs / "student" / "nothing-here") is None and not is_run(tmp_path)


def test_finetune_json_progress_and_no_library_noise(tiny_bert):
    result = _finetune(tiny_bert, "ft")
    assert result.code == 0, result.stderr
    out = result.json
    keys = {"output", "train_s", "teacher_cache_s", "epochs", "metrics", "kept_epoch", "stopped_early", "oos_rule"}
    assert set(out) == keys
    assert "curve" not in out["oos_rule"] and "out-of-scope rule (validation):" in result.stderr
    assert out["teacher_cache_s"] == 0 and len(out["epochs"]) == 2 and 0 <= out["metrics"]["accuracy"] <= 1
    assert "epoch 1: validation accuracy" in result.stderr and "samples/s" in result.stderr
    for noise in ("it/s]", "%|", "\x1b[", "Some weights", "{'loss'"):
        assert noise not in result.stderr, noise


def test_alpha_below_one_without_teacher_exits_2(tiny_bert):
    assert_one_line_error(_finetune(tiny_bert, "x", "--alpha", "0.5"), 2, "alpha=0.5 needs a teacher")
    r = run_cli("distill", *TRAIN_FLAGS, "--student", tiny_bert)
    assert_one_line_error(r, 2, "distill needs a teacher")
    assert not Path("runs").exists()


def test_existing_run_is_never_overwritten_without_flag(tiny_bert):
    assert _finetune(tiny_bert, "same").code == 0
    stamp = Path("runs/same/model.safetensors").stat().st_mtime_ns
    again = _finetune(tiny_bert, "same")
    assert_one_line_error(again, 2, "runs/same already exists", "--overwrite")
    assert Path("runs/same/model.safetensors").stat().st_mtime_ns == stamp
    assert _finetune(tiny_bert, "same", "--overwrite").code == 0
    assert Path("runs/same/model.safetensors").stat().st_mtime_ns != stamp
    assert sorted(p.name for p in Path("runs").iterdir()) == ["same"]


def test_overwrite_replaces_only_what_this_tool_made(tiny_bert, tmp_path):
    notes = Path("runs/notes")
    notes.mkdir(parents=True)
    (notes / "todo.txt").write_text("mine")
    assert_one_line_error(_finetune(tiny_bert, "notes", "--overwrite"), 2, "runs/notes is not a run made by distill")
    assert (notes / "todo.txt").read_text() == "mine"
    # A .partial folder the tool did not start is not replaced either.
    (Path("runs") / "other.partial").mkdir()
    (Path("runs") / "other.partial" / "draft.txt").write_text("mine")
    r = _finetune(tiny_bert, "other", "--overwrite")
    assert_one_line_error(r, 2, "runs/other.partial was not started by distill")
    assert (Path("runs") / "other.partial" / "draft.txt").read_text() == "mine"
    # A name is one folder under the runs folder: nothing is written outside it.
    assert_one_line_error(_finetune(tiny_bert, "../escape"), 2, "--name '../escape'", "one folder name")
    assert not (tmp_path / "escape").exists() and not (tmp_path / "escape.partial").exists()


def test_pickled_weights_are_refused_unless_allowed(tiny_bert, tmp_path):
    import shutil

    import torch
    from safetensors.torch import load_file

    pickled = tmp_path / "pickled"  # the tiny model as an old checkpoint: pytorch_model.bin, a pickle
    shutil.copytree(tiny_bert, pickled)
    torch.save(load_file(pickled / "model.safetensors"), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    assert (pickled / "pytorch_model.bin").is_file() and not list(pickled.glob("*.safetensors"))
    r = _finetune(pickled, "p", "--epochs", "1")
    assert_one_line_error(r, 2, "holds only pickled weights (pytorch_model.bin)", "convert them to safetensors")
    assert not Path("runs").exists()
    allowed = tmp_path / "allow.yaml"
    allowed.write_text("trust_remote_code: true\n")
    r = _finetune(pickled, "p", "--epochs", "1", "--config", allowed)
    assert r.code == 0, r.stderr
    # Nor does a run or its checkpoints keep a pickle of the training arguments.
    assert not list(Path("runs").rglob("*.bin"))


def test_settings_a_model_cannot_take_are_refused_before_any_run_folder(tiny_bert):
    assert_one_line_error(_finetune(tiny_bert, "s", "--seed", "-1"), 2, "'seed'", "greater than or equal to 0")
    r = _finetune(tiny_bert, "m", "--max-length", "100000")
    assert_one_line_error(r, 2, "--max-length 100000: the student reads at most")
    assert not Path("runs").exists()


def test_json_output_is_strict_json_even_for_a_diverged_run(capsys):
    import json

    from distill_cli.ui import emit_json

    emit_json({"loss": float("nan"), "epochs": [{"accuracy": float("inf")}, {"accuracy": 0.5}]})
    assert json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(c)) == {
        "loss": None,
        "epochs": [{"accuracy": None}, {"accuracy": 0.5}],
    }


def test_same_seed_same_metrics(tiny_bert):
    a, b = _finetune(tiny_bert, "a"), _finetune(tiny_bert, "b")
    assert a.json["epochs"] == b.json["epochs"]
    c = _finetune(tiny_bert, "c", "--seed", "7")
    assert c.json["epochs"] != a.json["epochs"]


def interrupt_at_step_20(monkeypatch):
    """Send the real SIGINT, through the real handler, at step 20; returns the callback's own method."""
    original = RichProgress.on_step_end

    def interrupted(self, args, state, control, **kw):
        if state.global_step == 20:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, args, state, control, **kw)

    monkeypatch.setattr(RichProgress, "on_step_end", interrupted)
    return original


def test_interrupt_saves_a_checkpoint_and_resume_ends_like_an_uninterrupted_run(tiny_bert, monkeypatch):
    # The last epoch is kept here, so the checkpoint of the interruption is the only one.
    flags = ("--epochs", "3", "--gradient-accumulation-steps", "1", "--no-keep-best-epoch")
    reference = _finetune(tiny_bert, "whole", *flags)
    assert reference.code == 0

    original = interrupt_at_step_20(monkeypatch)
    stopped = _finetune(tiny_bert, "cut", *flags)
    assert stopped.code == 130, stopped.stderr
    assert "resume with: distill finetune" in stopped.stderr and "--resume" in stopped.stderr
    assert (Path("runs/cut.partial") / "checkpoint-20" / "optimizer.safetensors").is_file()
    assert not list(Path("runs/cut.partial").rglob("*.pt")) and not Path("runs/cut").exists()

    monkeypatch.setattr(RichProgress, "on_step_end", original)
    refused = _finetune(tiny_bert, "cut", *flags)
    assert_one_line_error(refused, 2, "interrupted run", "--resume")
    # A resume trains with the settings the run started with, or not at all; where things go may change.
    changed = _finetune(tiny_bert, "cut", *flags, "--learning-rate", "1e-3", "--seed", "3", "--resume")
    assert_one_line_error(changed, 2, "cannot resume cut", "learning_rate 0.005 → 0.001", "seed 42 → 3", "--overwrite")

    # A damaged checkpoint is never resumed from silently: the file is named, or an older one is used.
    ckpt = Path("runs/cut.partial/checkpoint-20")
    shutil.copytree(ckpt, "saved")
    rng = ckpt / "rng_state.safetensors"
    rng.write_bytes(rng.read_bytes()[:-40])  # truncated
    damaged = _finetune(tiny_bert, "cut", *flags, "--resume")
    assert_one_line_error(damaged, 2, "checkpoint-20: rng_state.safetensors is damaged", "--overwrite")
    (ckpt / "scheduler.json").unlink()
    assert_one_line_error(_finetune(tiny_bert, "cut", *flags, "--resume"), 2, "scheduler.json is missing")
    # With an older intact checkpoint beside it (here: the same state under an older name), that one is used.
    shutil.copytree("saved", "runs/cut.partial/checkpoint-10")
    resumed = _finetune(tiny_bert, "cut", *flags, "--resume")
    assert resumed.code == 0, resumed.stderr
    assert "checkpoint-20: scheduler.json is missing" in resumed.stderr and "from checkpoint-10" in resumed.stderr
    assert resumed.json["metrics"] == reference.json["metrics"]
    assert not Path("runs/cut.partial").exists() and Path("runs/cut/run.json").is_file()

    # Pickles are never loaded on resume: torch.load is not called.
    assert_one_line_error(_finetune(tiny_bert, "none", "--resume"), 2, "nothing to resume")


def test_a_crashed_run_never_blocks_the_next_one(tiny_bert):
    """Killed before its first checkpoint (SIGKILL, a double Ctrl-C): the .partial folder holds only the mark."""
    partial = Path("runs/crashed.partial")
    partial.mkdir(parents=True)
    (partial / ".distill-run").write_text("a distill run in progress\n")
    again = _finetune(tiny_bert, "crashed")
    assert_one_line_error(again, 2, "interrupted run that saved no checkpoint", "--overwrite")
    assert "--resume" not in again.stderr
    assert_one_line_error(_finetune(tiny_bert, "crashed", "--resume"), 2, "nothing to resume", "--overwrite")
    fresh = _finetune(tiny_bert, "crashed", "--overwrite")
    assert fresh.code == 0, fresh.stderr
    assert Path("runs/crashed/run.json").is_file() and not partial.exists()


def test_a_second_run_of_the_same_name_at_once_is_refused(tiny_bert):
    from distill_cli.files import try_lock
    from distill_cli.runs import run_lock

    # What the first run holds until it ends, however it ends.
    held = try_lock(run_lock(Path("runs/busy"), Path(os.environ["DISTILL_CACHE"]) / "locks"))
    busy = _finetune(tiny_bert, "busy")
    assert_one_line_error(busy, 2, "run busy is being written by another distill process")
    assert not Path("runs/busy.partial").exists() and not Path("runs/busy").exists()
    held.close()
    assert _finetune(tiny_bert, "busy").code == 0


def test_student_layers_come_from_the_checkpoint(tiny_bert):
    from transformers import AutoModelForSequenceClassification

    from distill_cli.modeling import keep_layers, spread_layers

    assert spread_layers(12, 6) == [0, 2, 4, 7, 9, 11] and spread_layers(6, 3) == [0, 2, 5]
    assert spread_layers(4, 2) == [0, 3] and spread_layers(4, 4) == [0, 1, 2, 3] and spread_layers(4, 1) == [0]
    full = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=3, ignore_mismatched_sizes=True)
    cut = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=3, ignore_mismatched_sizes=True)
    assert keep_layers(cut, 2) == [0, 3]
    kept, orig = cut.bert.encoder.layer, full.bert.encoder.layer
    assert len(kept) == 2 and cut.config.num_hidden_layers == 2
    for k, o in zip(kept, (orig[0], orig[3])):
        assert all(torch.equal(a, b) for a, b in zip(k.state_dict().values(), o.state_dict().values()))


def test_distilbert_student_of_a_bert_teacher_with_another_vocabulary(runs, tiny_distilbert, tmp_path):
    r = distill_from_teacher(runs, tiny_distilbert, "--student-layers", "1", "--epochs", "2", "--name", "cross")
    assert r.code == 0, r.stderr
    assert "warning:" not in r.stderr  # another architecture is a supported path (MiniLM-L6 from MPNet), said nowhere
    cfg = json.loads((runs / "cross" / "config.json").read_text())
    assert cfg["model_type"] == "distilbert" and cfg["n_layers"] == 1
    # Online mode cannot feed one tokenization to both: refused with a pointer to the cache.
    online = distill_from_teacher(runs, tiny_distilbert, "--teacher-mode", "online", "--epochs", "1", "--name", "x")
    assert_one_line_error(online, 2, "share a tokenizer")


def test_label_mismatch_with_the_teacher_exits_2(runs, tmp_path):
    data = tmp_path / "extra.csv"
    data.write_text(
        "text,label\nplay jazz,play_music\nbook a flight,book_flight\nwhat time is it,clock\nset alarm,set_alarm\n"
    )
    flags = ("--runs-dir", runs, "--teacher", "teacher", "--student", "teacher", "--max-length", "24")
    r = run_cli("distill", "--dataset", data, *flags)
    assert_one_line_error(r, 2, "unknown to the teacher teacher", "book_flight, clock")


def test_unsupported_architecture_exits_2(tmp_path):
    from transformers import GPT2Config, GPT2ForSequenceClassification

    GPT2ForSequenceClassification(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50)).save_pretrained(
        tmp_path / "gpt"
    )
    (tmp_path / "gpt" / "vocab.json").write_text("{}")
    r = run_cli("finetune", *TRAIN_FLAGS, "--student", tmp_path / "gpt", "--name", "g")
    assert_one_line_error(r, 2, "is a gpt2 model", "BERT-family")


def test_teacher_cache_is_reused_across_runs(runs):
    flags = ("--student-layers", "1", "--epochs", "1", "--cache-dir", "c", "--json")
    r = distill_from_teacher(runs, "teacher", *flags, "--name", "again")
    r2 = distill_from_teacher(runs, "teacher", *flags, "--name", "again2")
    assert r.code == r2.code == 0
    first = json.loads((runs / "again" / "run.json").read_text())["teacher"]
    second = json.loads((runs / "again2" / "run.json").read_text())["teacher"]
    assert first["cache_reused"] is False and second["cache_reused"] is True
    assert len(list(Path("c/teacher-logits").glob("*.safetensors"))) == 1


@pytest.mark.parametrize("damage", ["flip", "truncate", "nan"])
def test_a_damaged_teacher_cache_entry_is_rebuilt_not_trusted(runs, damage):
    import torch
    from safetensors.torch import save_file

    flags = ("--student-layers", "1", "--epochs", "1", "--cache-dir", "c", "--json")
    first = distill_from_teacher(runs, "teacher", *flags, "--name", "clean")
    assert first.code == 0, first.stderr
    (entry,) = Path("c/teacher-logits").glob("*.safetensors")
    raw = bytearray(entry.read_bytes())
    if damage == "flip":  # damaged data bytes: the checksum no longer matches
        raw[-64:] = bytes(b ^ 0xFF for b in raw[-64:])
        entry.write_bytes(bytes(raw))
    elif damage == "truncate":  # a damaged header or a short file
        entry.write_bytes(bytes(raw[: len(raw) // 3]))
    else:  # NaN values: refused even with the shape and a checksum of their own
        from safetensors import safe_open

        from distill_cli.training.teacher_cache import tensor_digest

        with safe_open(str(entry), "pt") as f:
            shape = f.get_tensor("logits").shape
        logits = torch.full(tuple(shape), float("nan"))
        save_file({"logits": logits}, str(entry), metadata={"rows": str(shape[0]), "sha256": tensor_digest(logits)})
    again = distill_from_teacher(runs, "teacher", *flags, "--name", "again")
    assert again.code == 0, again.stderr
    assert "teacher-logit cache entry" in again.stderr and "damaged; computing it again" in again.stderr
    assert again.json["epochs"] == first.json["epochs"]  # the same run as with the sound cache
    assert json.loads((runs / "again" / "run.json").read_text())["teacher"]["cache_reused"] is False


def test_a_diverging_run_stops_with_exit_1_and_keeps_no_finished_model(runs, monkeypatch):
    import torch

    from distill_cli.training import trainer

    monkeypatch.setattr(trainer, "distillation_loss", lambda *a: torch.tensor(float("nan"), requires_grad=True))
    r = distill_from_teacher(runs, "teacher", "--student-layers", "1", "--epochs", "1", "--name", "nan", "--json")
    last = [ln for ln in r.stderr.splitlines() if ln.strip()][-1]
    assert r.code == 1 and last.startswith("error: training diverged: the loss is nan at step 0")
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert not (runs / "nan").exists() and (runs / "nan.partial").is_dir()  # nothing that looks finished


def test_two_processes_with_torchrun(runs, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DISTILL_CACHE": str(tmp_path / "cache")}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        "-m",
        "distill_cli",
        "distill",
        *TRAIN_FLAGS,
        "--runs-dir",
        str(runs),
        "--teacher",
        "teacher",
        "--student",
        "teacher",
        "--student-layers",
        "2",
        "--epochs",
        "2",
        "--name",
        "ddp",
        "--json",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(out) == 1 and out[0]["output"].endswith("ddp")  # one summary, from rank 0
    summary = json.loads((runs / "ddp" / "run.json").read_text())
    assert summary["world_size"] == 2 and len(summary["epochs"]) == 2
    assert sorted(p.name for p in runs.iterdir() if p.name.startswith("ddp")) == ["ddp"]
    # The teacher's pass is shared: each process labels half of the rows, and one cache entry is written.
    assert proc.stderr.count("teacher logits (process 1 of 2) 110/110") == 1
    assert proc.stderr.count("teacher logits (process 2 of 2) 110/110") == 1
    entries = list((tmp_path / "cache" / "teacher-logits").glob("*.safetensors"))
    assert len(entries) == 1
    # The same rows as one process computes them (tensor by tensor), under the same cache key.
    from safetensors.torch import load_file

    from distill_cli.config import Config
    from distill_cli.data.prepared import load_for_training
    from distill_cli.modeling import load_for_inference, load_tokenizer, resolve_model
    from distill_cli.training.teacher_cache import compute_logits

    cfg = Config(dataset="demo-intents", max_length=24, runs_dir=runs, cache_dir=tmp_path / "cache")
    ref = resolve_model("teacher", cfg)
    texts = list(load_for_training(cfg, load_tokenizer(ref, cfg), ref.location).datasets["train"]["text"])
    alone = compute_logits(load_for_inference(ref, cfg), load_tokenizer(ref, cfg), texts, 24)
    assert torch.allclose(load_file(str(entries[0]))["logits"], alone, atol=1e-5)
    again = run_cli("distill", *TRAIN_FLAGS, "--runs-dir", runs, "--teacher", "teacher", "--student", "teacher",
                    "--student-layers", "2", "--epochs", "1", "--name", "one", "--cache-dir", tmp_path / "cache",
                    "--json")  # fmt: skip
    assert again.code == 0 and "teacher logits 220/220" not in again.stderr, again.stderr
    assert json.loads((runs / "one" / "run.json").read_text())["teacher"]["cache_reused"] is True


def test_early_stopping_keeps_the_best_epoch_and_records_which(runs):
    """With a learning rate too small to change a weight, every epoch scores the same: the first is the best
    (the first of equals), so patience 1 stops after the second and keeps the first; patience 0 trains every
    epoch and still keeps the first; the default (2 for a transformer) stops after the third, and run.json
    records it; without keep_best_epoch the last is kept."""
    flags = (*TRAIN_FLAGS, "--runs-dir", runs, "--student", "teacher", "--learning-rate", "1e-12", "--json")
    cases = [
        (("--epochs", "4", "--patience", "1", "--name", "p1"), 2, 1.0, True, 1),
        (("--epochs", "3", "--patience", "0", "--name", "p0"), 3, 1.0, False, 0),
        (("--epochs", "4", "--name", "default"), 3, 1.0, True, 2),
        (("--epochs", "3", "--no-keep-best-epoch", "--name", "last"), 3, 3.0, False, None),
    ]
    for extra, epochs, kept, stopped, patience in cases:
        r = run_cli("finetune", *flags, *extra)
        assert r.code == 0, r.stderr
        record = json.loads((runs / extra[-1] / "run.json").read_text())
        assert len(record["epochs"]) == epochs and record["kept_epoch"] == kept, extra
        assert record["stopped_early"] is stopped and r.json["kept_epoch"] == kept
        assert record["config"]["patience"] == patience, extra
        assert record["metrics"] == next(e for e in record["epochs"] if e["epoch"] == kept)
    again = run_cli("finetune", *flags, "--epochs", "3", "--patience", "1", "--name", "again")
    assert "kept epoch 1 (the best expected accuracy), stopped early (patience)" in again.stderr


def test_an_interrupted_run_that_keeps_its_best_epoch_keeps_both_checkpoints_and_resumes(tiny_bert, monkeypatch):
    """The best epoch's checkpoint and the interruption's are both kept (a limit of one checkpoint would
    keep the best alone), and the resumed run ends as the uninterrupted one: same epochs, same kept epoch."""
    flags = ("--epochs", "3", "--gradient-accumulation-steps", "1", "--patience", "0")
    reference = _finetune(tiny_bert, "whole", *flags)
    assert reference.code == 0, reference.stderr
    original = interrupt_at_step_20(monkeypatch)
    assert _finetune(tiny_bert, "cut", *flags).code == 130
    kept = sorted(p.name for p in Path("runs/cut.partial").glob("checkpoint-*"))
    assert "checkpoint-20" in kept and len(kept) == 2, kept  # the latest, and the best of the epochs so far
    monkeypatch.setattr(RichProgress, "on_step_end", original)
    resumed = _finetune(tiny_bert, "cut", *flags, "--resume")
    assert resumed.code == 0, resumed.stderr
    assert resumed.json["epochs"] == reference.json["epochs"]
    assert resumed.json["kept_epoch"] == reference.json["kept_epoch"]
    assert resumed.json["metrics"] == reference.json["metrics"]
