"""Hidden-state matching (``hidden_weight``): the loss is zero where the student's layers are the teacher's,
its gradient reaches the student's layers, a tiny run trains with it, and teachers whose tokens or width
differ from the student's are refused before any compute."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import assert_one_line_error, distill_from_teacher

from distill_cli.errors import UsageError
from distill_cli.training.hidden import hidden_loss, layer_map


def test_zero_where_the_student_is_the_teacher_and_the_gradient_flows():
    torch.manual_seed(0)
    teacher = [torch.randn(2, 5, 8) for _ in range(4)]
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    same = hidden_loss([teacher[0], teacher[2]], teacher, [0, 2], mask)
    assert same.item() == pytest.approx(0.0, abs=1e-7)
    student = [torch.randn(2, 5, 8, requires_grad=True) for _ in range(2)]
    loss = hidden_loss(student, teacher, [1, 3], mask)
    loss.backward()
    assert loss.item() > 0 and all(s.grad.abs().sum() > 0 for s in student)
    assert student[0].grad[0, 3:].abs().sum() == 0  # padding tokens are not matched


def test_the_layer_map():
    assert layer_map(None, 2, 4, [0, 3]) == [0, 3]  # a student cut from the teacher: the layers it kept
    assert layer_map(None, 3, 6, None) == [0, 2, 5]  # spread evenly
    assert layer_map([1, 1], 2, 4, [0, 3]) == [1, 1]
    with pytest.raises(UsageError, match="one teacher layer"):
        layer_map([0, 9], 2, 4, None)


def test_a_run_trains_with_it_and_mismatches_are_refused(runs, tiny_distilbert):
    flags = ("--student-layers", "2", "--epochs", "1", "--hidden-weight", "1")
    r = distill_from_teacher(runs, "teacher", *flags, "--name", "hidden", "--json")
    assert r.code == 0, r.stderr
    assert json.loads((runs / "hidden" / "run.json").read_text())["config"]["hidden_weight"] == 1.0
    other = distill_from_teacher(runs, tiny_distilbert, *flags, "--name", "mismatch")
    assert_one_line_error(other, 2, "--hidden-weight", "tokenizer")
    assert not (runs / "mismatch").exists() and not (runs / "mismatch.partial").exists()
    online = distill_from_teacher(runs, "teacher", *flags, "--teacher-mode", "online", "--name", "online")
    assert online.code == 0, online.stderr  # one teacher pass a step gives the logits and the layers
    wrong_map = distill_from_teacher(runs, "teacher", *flags, "--layer-map", "0", "--name", "map")
    assert_one_line_error(wrong_map, 2, "--layer-map")
