"""Probe, then fine-tune (LP-FT, Kumar et al. 2022): fit the classification head on the frozen body's
features before training everything, so that fine-tuning starts from a head that already works instead of
a random one, and erases less of what the pretrained encoder knew.

The head is the model's last linear layer; its features are what reaches it (the pooled sentence vector).
It is fitted in closed-form style, full batch with L-BFGS, on the loss the run itself uses:
``alpha * CE(labels) + (1 - alpha) * T^2 * KL(teacher || head)`` plus an L2 penalty; with ``alpha = 1``
this is multinomial logistic regression, scikit-learn's ``LogisticRegression(C=PROBE_C)``.
"""

from __future__ import annotations

import torch

from distill_cli.inference import final_linear, pooled_output
from distill_cli.training.loss import distillation_loss
from distill_cli.training.teacher_cache import batched_outputs

PROBE_C = 10.0  # inverse L2 strength, as LogisticRegression's C: C=10 beat C=1 as the start of fine-tuning
PROBE_ITERATIONS = 150
# The probe fits on the training split's first rows at most (the labelled ones come first, then the transfer
# and augmented rows): it is a start for the head, and its full-batch fit holds about 11 KB a row (L-BFGS
# over 151 outputs), so a million transfer rows would cost gigabytes and as much time as an epoch.
PROBE_ROWS = 20_000


def head_features(model, tokenizer, texts: list[str], max_length: int, precision: str = "fp32") -> torch.Tensor:
    """What the head reads for each text, the body frozen and in eval mode (no dropout)."""
    with pooled_output(model) as (features, width):
        return batched_outputs(model, tokenizer, texts, max_length, features, width, "probe features", 64, precision)


def fit_head(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_labels: int,
    teacher_logits: torch.Tensor | None = None,
    alpha: float = 1.0,
    temperature: float = 1.0,
    kd_loss: str = "kl",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and bias of a linear head fitted on ``features``; see the module doc for the loss."""
    weight = torch.zeros(num_labels, features.shape[1], requires_grad=True)
    bias = torch.zeros(num_labels, requires_grad=True)
    penalty = 1.0 / (2.0 * PROBE_C * len(features))
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=PROBE_ITERATIONS, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        logits = features @ weight.T + bias
        kd = distillation_loss(logits, labels, teacher_logits, alpha, temperature, kd_loss=kd_loss)
        loss = kd + penalty * weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


def probe(
    model, features: torch.Tensor, labels: torch.Tensor, teacher_logits=None, alpha=1.0, temperature=1.0, kd_loss="kl"
):
    """Fit ``model``'s head on its frozen ``features`` (see ``head_features``; rows aligned with ``labels``
    and ``teacher_logits``)."""
    head = final_linear(model)
    weight, bias = fit_head(features, labels, head.out_features, teacher_logits, alpha, temperature, kd_loss)
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.copy_(bias)
