"""The teacher's pass is saved piece by piece: an interrupted pass resumes where it stopped, and the entry
it finally writes is the one an uninterrupted pass writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from conftest import TRAIN_FLAGS, distill_from_teacher, waits_on_lock


def test_an_interrupted_teacher_pass_resumes_where_it_stopped(runs, tiny_distilbert, monkeypatch, tmp_path):
    from safetensors.torch import load_file

    from distill_cli.training import teacher_cache

    labels = len(json.loads((runs / "teacher" / "config.json").read_text())["id2label"])
    monkeypatch.setattr(teacher_cache, "PIECE_ROWS", 64)
    real, computed, stop_after = teacher_cache.compute_rows, [], [1]

    def counted(model, tokenizer, enc, rows, output, width, *args, **kwargs):
        if width == labels:  # the teacher's logits (the probe's features are as wide as the student)
            if stop_after and len(computed) == stop_after[0]:
                raise KeyboardInterrupt  # Ctrl-C after the first piece was saved
            computed.append(len(rows))
        return real(model, tokenizer, enc, rows, output, width, *args, **kwargs)

    monkeypatch.setattr(teacher_cache, "compute_rows", counted)
    cache = tmp_path / "cache"
    flags = ("--epochs", "1", "--cache-dir", cache)
    r = distill_from_teacher(runs, tiny_distilbert, *flags, "--name", "s")
    assert r.code == 130, r.stderr
    store = cache / "teacher-logits"
    assert not list(store.glob("*.safetensors"))  # nothing that looks finished
    assert len(list(store.glob("*.pieces/piece-*.safetensors"))) == 1 and computed == [55]  # 220 rows, 4 pieces
    # Run again: only the rest is computed.
    computed.clear()
    stop_after.clear()
    r = distill_from_teacher(runs, tiny_distilbert, *flags, "--name", "s")
    assert r.code == 0, r.stderr
    train_rows = 220
    assert sum(computed) == train_rows - 55 and len(computed) == 3  # the three other pieces
    (entry,) = store.glob("*.safetensors")
    assert not list(store.glob("*.pieces"))  # the pieces are in the entry now
    # The same logits as one uninterrupted pass (no pieces left over to reuse).
    resumed = load_file(str(entry))["logits"]
    entry.unlink()
    computed.clear()
    r = distill_from_teacher(runs, tiny_distilbert, *flags, "--name", "t")
    assert r.code == 0 and sum(computed) == train_rows, r.stderr
    assert torch.equal(load_file(str(next(store.glob("*.safetensors"))))["logits"], resumed)


def test_a_rank_that_dies_mid_pass_leaves_no_entry_and_the_rerun_computes_the_rest(runs, tmp_path):
    """Under torchrun, process 2 of 2 dies after saving its first piece: torchrun stops the other, nothing
    that looks finished is left, and a rerun labels only the pieces not saved, then writes the entry."""
    cache, log = tmp_path / "cache", tmp_path / "log"
    log.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DISTILL_CACHE": str(cache), "PIECE_ROWS": "32"}
    env["PIECES_LOG"] = str(log)
    script = Path(__file__).with_name("torchrun_teacher_pass.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
           str(script), "distill", *TRAIN_FLAGS, "--runs-dir", str(runs), "--teacher", "teacher",
           "--student", "teacher", "--student-layers", "2", "--epochs", "1", "--name", "dies"]  # fmt: skip
    died = subprocess.run(cmd, capture_output=True, text=True, env={**env, "DIE_RANK": "1"}, cwd=tmp_path, timeout=300)
    assert died.returncode != 0
    store = cache / "teacher-logits"
    assert not list(store.glob("*.safetensors"))  # no entry: the pass did not finish
    assert not (runs / "dies").exists()
    saved = sum(int(n) for f in log.glob("rank-*.txt") for n in f.read_text().split())
    assert (log / "rank-1.txt").read_text().split() == ["31"]  # one piece: 220 rows make 7 of 31 or 32
    assert 0 < saved < 220 and sum(1 for _ in store.glob("*.pieces/piece-*.safetensors")) in (1, 2)
    for f in log.glob("rank-*.txt"):
        f.unlink()
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    computed = sum(int(n) for f in log.glob("rank-*.txt") for n in f.read_text().split())
    assert computed == 220 - saved  # only the rest was labelled
    (entry,) = store.glob("*.safetensors")
    assert not list(store.glob("*.pieces"))
    assert json.loads((runs / "dies" / "run.json").read_text())["world_size"] == 2
    from safetensors.torch import load_file

    assert load_file(str(entry))["logits"].shape[0] == 220 and entry.stat().st_size > 0


def test_a_second_process_after_the_same_entry_waits_for_the_first_and_reads_its_entry(runs, tmp_path):
    """Two search workers (or two runs) label with one teacher at once: the later waits on the entry's lock
    and reads the entry the first wrote, instead of labelling beside it (and losing the pieces it removes)."""
    from distill_cli import modeling
    from distill_cli.config import load_config
    from distill_cli.training import teacher_cache

    cfg = load_config(None, "distill", {"teacher": str(runs / "teacher"), "cache_dir": str(tmp_path / "cache")})
    ref = modeling.resolve_model(cfg.teacher, cfg)
    model_config = modeling.load_model_config(ref, cfg)
    texts = [f"what is the balance of account {i}" for i in range(40)]
    first, reused = teacher_cache.teacher_logits(cfg, ref, model_config, texts)
    assert not reused
    (entry,) = (tmp_path / "cache" / "teacher-logits").glob("*.safetensors")
    held = entry.with_name("held")
    entry.rename(held)  # as it is while the first process is still labelling
    (lock,) = (tmp_path / "cache" / "locks").glob("teacher-*.lock")
    values, reused = waits_on_lock(lock, lambda: teacher_cache.teacher_logits(cfg, ref, model_config, texts),
                                   finish=lambda: held.rename(entry))  # fmt: skip
    assert reused and torch.equal(values, first)
