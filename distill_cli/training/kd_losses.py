"""The distillation term, chosen by name (``kd_loss`` in the config), as torchtune's ``kd_losses.py``.

Each maps the student's and the teacher's logits and a temperature to one loss per row, scaled so that the
terms are interchangeable beside the cross-entropy: the KL ones times ``T²`` (Hinton et al. 2015), which keeps
their gradients on one scale whatever the temperature; ``mse`` is half the mean squared difference of the
row-centred logits, the limit ``T²·KL`` tends to at high temperature (logits that differ by a constant give
the same probabilities, and no loss). Every one is zero where the student's logits equal the teacher's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def forward_kl(student: torch.Tensor, teacher: torch.Tensor, t: float) -> torch.Tensor:
    """``T² · KL(teacher ‖ student)``: the student covers every intent the teacher gives weight to (mean-seeking)."""
    log_p_student = F.log_softmax(student / t, dim=-1)
    log_p_teacher = F.log_softmax(teacher / t, dim=-1)
    return t * t * (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1)


def reverse_kl(student: torch.Tensor, teacher: torch.Tensor, t: float) -> torch.Tensor:
    """``T² · KL(student ‖ teacher)``: the student puts its weight where the teacher's is largest (mode-seeking)."""
    return forward_kl(teacher, student, t)


def symmetric_kl(student: torch.Tensor, teacher: torch.Tensor, t: float) -> torch.Tensor:
    """The mean of the two directions (the Jeffreys divergence, halved)."""
    return 0.5 * (forward_kl(student, teacher, t) + reverse_kl(student, teacher, t))


def mse(student: torch.Tensor, teacher: torch.Tensor, t: float) -> torch.Tensor:
    """Half the mean squared difference of the row-centred logits (Ba and Caruana 2014); no temperature."""
    diff = (student - student.mean(-1, keepdim=True)) - (teacher - teacher.mean(-1, keepdim=True))
    return 0.5 * diff.square().mean(-1)


KD_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]] = {
    "kl": forward_kl,
    "reverse_kl": reverse_kl,
    "symmetric_kl": symmetric_kl,
    "mse": mse,
}
