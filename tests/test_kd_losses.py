"""The distillation terms chosen by name (``kd_loss``): zero where the student matches the teacher, a
gradient that reaches the student, ``kl`` as it always was, and a run that trains with another one."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_one_line_error, distill_from_teacher

from distill_cli.training.kd_losses import KD_LOSSES
from distill_cli.training.loss import distillation_loss


@pytest.mark.parametrize("name", sorted(KD_LOSSES))
def test_zero_where_the_student_is_the_teacher_and_positive_elsewhere(name):
    torch.manual_seed(0)
    teacher = torch.randn(6, 5) * 3
    same = KD_LOSSES[name](teacher.clone(), teacher, 2.0)
    assert torch.allclose(same, torch.zeros(6), atol=1e-6)
    shifted = KD_LOSSES[name](teacher + 4.0, teacher, 2.0)  # the same probabilities
    assert torch.allclose(shifted, torch.zeros(6), atol=1e-5)
    other = KD_LOSSES[name](torch.randn(6, 5), teacher, 2.0)
    assert (other > 1e-4).all()


@pytest.mark.parametrize("name", sorted(KD_LOSSES))
def test_the_gradient_reaches_the_student(name):
    torch.manual_seed(1)
    student = torch.randn(4, 7, requires_grad=True)
    teacher = torch.randn(4, 7)
    labels = torch.tensor([0, 3, -100, 6])  # an unlabelled row gets the KD term alone
    distillation_loss(student, labels, teacher, 0.5, 2.0, kd_loss=name).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert student.grad[2].abs().sum() > 0


def test_kl_is_the_loss_it_always_was():
    """``T² · KL(teacher ‖ student)`` as ``F.kl_div`` computes it: the default did not move."""
    torch.manual_seed(2)
    student, teacher, t = torch.randn(8, 11), torch.randn(8, 11), 3.0
    expected = F.kl_div(F.log_softmax(student / t, -1), F.softmax(teacher / t, -1), reduction="none").sum(-1) * t * t
    assert torch.allclose(KD_LOSSES["kl"](student, teacher, t), expected, atol=1e-6)
    assert torch.allclose(KD_LOSSES["reverse_kl"](student, teacher, t), KD_LOSSES["kl"](teacher, student, t))


def test_mse_is_the_high_temperature_limit_of_kl():
    torch.manual_seed(3)
    student, teacher = torch.randn(5, 9), torch.randn(5, 9)
    high_t = KD_LOSSES["kl"](student, teacher, 200.0)
    assert torch.allclose(high_t, KD_LOSSES["mse"](student, teacher, 1.0), rtol=0.05)


def test_a_run_trains_with_another_kd_loss(runs):
    r = distill_from_teacher(runs, "teacher", "--student-layers", "2", "--epochs", "1", "--kd-loss", "reverse_kl",
                             "--name", "rkl", "--json")  # fmt: skip
    assert r.code == 0, r.stderr
    assert json.loads((runs / "rkl" / "run.json").read_text())["config"]["kd_loss"] == "reverse_kl"
    assert_one_line_error(distill_from_teacher(runs, "teacher", "--kd-loss", "js"), 2, "--kd-loss js", "reverse_kl")
