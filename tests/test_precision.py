"""`precision: auto | fp32 | bf16 | fp16`: resolved for the machine, passed to the Trainer and the tool's own
passes, recorded in run.json; fp16 without a GPU is refused before any work."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TRAIN_FLAGS, assert_one_line_error, distill_from_teacher, run_cli


def test_auto_is_fp32_on_the_cpu_and_half_on_a_gpu(monkeypatch):
    from distill_cli import precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert precision.resolve("auto") == "fp32" and precision.problem("fp16") is not None
    assert precision.problem("bf16") is None and precision.training_arguments("bf16") == {"bf16": True, "fp16": False}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert precision.resolve("auto") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert precision.resolve("auto") == "fp16" and precision.problem("fp16") is None


def test_fp16_on_the_cpu_is_refused_before_any_work(tiny_bert, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    r = run_cli("finetune", *TRAIN_FLAGS, "--student", tiny_bert, "--name", "h", "--precision", "fp16")
    assert_one_line_error(r, 2, "precision fp16 needs a CUDA GPU", "bf16 or fp32")
    assert not (tmp_path / "runs" / "h").exists() and not (tmp_path / "runs" / "h.partial").exists()
    e = run_cli("evaluate", tiny_bert, "--precision", "fp16")
    assert_one_line_error(e, 2, "precision fp16 needs a CUDA GPU")


def test_bf16_on_the_cpu_trains_distills_and_is_recorded(runs, tiny_bert, tiny_distilbert, tmp_path):
    r = run_cli("finetune", *TRAIN_FLAGS, "--student", tiny_bert, "--epochs", "3", "--name", "b", "--precision", "bf16")
    assert r.code == 0, r.stderr
    assert r.stderr.count("precision bf16 on the CPU") == 1  # said once
    record = json.loads((tmp_path / "runs" / "b" / "run.json").read_text())
    assert record["precision"] == "bf16" and record["config"]["precision"] == "bf16"
    losses = [e["loss"] for e in record["epochs"]]
    assert len(losses) == 3 and losses[-1] < losses[0]  # it trained
    fp32 = run_cli("finetune", *TRAIN_FLAGS, "--student", tiny_bert, "--epochs", "2", "--name", "f")
    assert fp32.code == 0, fp32.stderr
    assert json.loads((tmp_path / "runs" / "f" / "run.json").read_text())["precision"] == "fp32"
    # The teacher's pass in bf16 is a cache entry of its own: fp32 logits are never served for bf16 ones.
    cache = tmp_path / "cache"
    for half in ("fp32", "bf16"):
        d = distill_from_teacher(runs, tiny_distilbert, "--epochs", "1", "--name", f"s-{half}",
                                 "--precision", half, "--cache-dir", cache)  # fmt: skip
        assert d.code == 0, d.stderr
    assert len(list((cache / "teacher-logits").glob("*.safetensors"))) == 2
    e = run_cli("evaluate", "b", "--precision", "bf16", "--latency-runs", "2", "--json")
    assert e.code == 0 and e.json["precision"] == "bf16", e.stderr
