"""The teacher's pass is saved piece by piece: an interrupted pass resumes where it stopped, and the entry
it finally writes is the one an uninterrupted pass writes."""

from __future__ import annotations

import json

import torch
from conftest import distill_from_teacher


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
