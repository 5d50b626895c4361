"""The benchmarks' harness (``benchmarks/common.py``): an interrupted benchmark goes on where it stopped, but a
run asked for with other flags is trained again, never taken for the one asked."""

from __future__ import annotations

import json
import sys

from conftest import REPO, TRAIN_FLAGS


def test_train_once_reuses_a_run_only_when_asked_with_the_same_flags(tiny_bert, tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    from common import train_once

    runs = tmp_path / "bench-runs"
    flags = (*TRAIN_FLAGS, "--student", tiny_bert, "--epochs", "1")
    first = train_once("finetune", runs, "f", *flags)
    written = (runs / "f" / "run.json").stat().st_mtime_ns
    assert train_once("finetune", runs, "f", *flags) == first  # reused: not trained again
    assert (runs / "f" / "run.json").stat().st_mtime_ns == written
    other = train_once("finetune", runs, "f", *flags[:-1], "2")  # other flags: the old run moved aside
    assert first["config"]["epochs"] == 1 and other["config"]["epochs"] == 2
    assert json.loads((runs / "f.stale-1" / "run.json").read_text()) == first
    assert json.loads((runs / "f.stale-1.asked.json").read_text())["flags"][-1] == "1"
    assert json.loads((runs / "f.asked.json").read_text())["flags"][-1] == "2"
    assert train_once("finetune", runs, "g", *flags, reuse_only=True) is None
