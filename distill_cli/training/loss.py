"""The loss of knowledge distillation (Hinton et al. 2015; chapter 8 of *NLP with Transformers*)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from distill_cli.training.kd_losses import KD_LOSSES


def distillation_loss(
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    alpha: float,
    temperature: float,
    unlabelled_weight: float = 1.0,
    kd_loss: str = "kl",
) -> torch.Tensor:
    """Per row ``alpha * CE + (1 - alpha) * KD``, averaged over the batch, where ``KD`` is the term named
    ``kd_loss`` (``kd_losses.py``; ``kl``: ``T^2 * KL(teacher || student)``); a row labelled ``-100`` (a
    transfer-set or augmented query) gets ``unlabelled_weight * KD`` alone. A row whose teacher logits are
    NaN (a file of labels that does not cover it) has no KD term: its label alone (CE), or nothing."""
    labelled = labels >= 0
    if alpha >= 1.0 and bool(labelled.all()):
        return F.cross_entropy(student_logits, labels)
    if teacher_logits is None:
        raise ValueError("alpha < 1 or unlabelled rows need the teacher's logits")
    teacher = teacher_logits.to(student_logits.dtype)
    taught = torch.isfinite(teacher).all(-1)
    ce = F.cross_entropy(student_logits, labels.clamp(min=0), reduction="none") * labelled
    kd = KD_LOSSES[kd_loss](student_logits, torch.where(taught[:, None], teacher, student_logits.detach()), temperature)
    kd_weight = torch.where(labelled, torch.full_like(kd, 1.0 - alpha), torch.full_like(kd, unlabelled_weight))
    ce_weight = torch.where(taught, torch.full_like(kd, alpha), torch.ones_like(kd))  # untaught: the label alone
    return (ce_weight * ce + kd_weight * taught * kd).mean()


def geometry_loss(projected: torch.Tensor, teacher_features: torch.Tensor) -> torch.Tensor:
    """``1 - cos`` between the student's projected pooled vectors and the teacher's, averaged over the
    batch: the student learns where the teacher puts each sentence, not only its 151 logits, across
    vocabularies and widths (the projection maps one width to the other). Zero when they point alike."""
    return (1.0 - F.cosine_similarity(projected, teacher_features.to(projected.dtype), dim=-1)).mean()


def contrastive_loss(features: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """The supervised contrastive loss (Khosla et al. 2020, as CPFT and FastFit use it for few-shot intents)
    over the batch's labelled rows: each row's L2-normalised pooled vector is pulled toward the other rows
    of its label and pushed from the rest, ``-mean log softmax(cos / temperature)`` over its positives,
    averaged over the rows that have one. Zero for a batch where no label occurs twice."""
    keep = labels >= 0
    z, y = F.normalize(features[keep].float(), dim=-1), labels[keep]
    n = len(y)
    if n < 2:
        return features.sum() * 0.0
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    positives = (y[:, None] == y[None, :]) & ~self_mask
    anchors = positives.any(1)
    if not anchors.any():
        return features.sum() * 0.0
    logits = (z @ z.T / temperature).masked_fill(self_mask, float("-inf"))
    log_prob = logits.log_softmax(-1).masked_fill(~positives, 0.0)
    per_row = -log_prob.sum(1) / positives.sum(1).clamp(min=1)
    return per_row[anchors].mean()
