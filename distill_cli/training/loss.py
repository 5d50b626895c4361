"""The loss of knowledge distillation (Hinton et al. 2015; chapter 8 of *NLP with Transformers*)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def distillation_loss(
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    alpha: float,
    temperature: float,
) -> torch.Tensor:
    """``alpha * CE + (1 - alpha) * T^2 * KL(teacher || student)``, KL averaged over the batch.

    The ``T^2`` factor keeps the soft-target gradients on the same scale whatever the temperature.
    """
    ce = F.cross_entropy(student_logits, labels)
    if alpha >= 1.0:
        return ce
    if teacher_logits is None:
        raise ValueError("alpha < 1 needs the teacher's logits")
    t = temperature
    kl = F.kl_div(
        F.log_softmax(student_logits / t, dim=-1),
        F.softmax(teacher_logits.to(student_logits.dtype) / t, dim=-1),
        reduction="batchmean",
    )
    return alpha * ce + (1.0 - alpha) * t * t * kl
