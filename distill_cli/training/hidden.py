"""Hidden-state matching (``hidden_weight``): each student layer's token vectors pulled toward those of one
teacher layer (``layer_map``), the mean squared difference over the real tokens (TinyBERT's intermediate
layer loss; Jiao et al. 2020), beside the distillation of the logits. Teacher and student must read the same
tokens (one tokenizer) and have one width; ``recipe.load_models`` refuses others before any compute."""

from __future__ import annotations

import torch

from distill_cli import modeling
from distill_cli.errors import UsageError


class LayerTap:
    """The output of each layer of a model's encoder, caught by forward hooks while ``active``."""

    def __init__(self, model):
        owner, attr = modeling.layer_stack(model, "--hidden-weight")
        self.layers = len(getattr(owner, attr))
        self.states: list[torch.Tensor] = []
        self.active = False
        for layer in getattr(owner, attr):
            layer.register_forward_hook(self._catch)

    def _catch(self, _module, _args, output) -> None:
        if self.active:
            self.states.append(output[0] if isinstance(output, tuple) else output)

    def catch(self, call):
        """The layer outputs of ``call()`` (a forward pass), in order, and its result."""
        self.states, self.active = [], True
        try:
            result = call()
        finally:
            self.active = False
        states, self.states = self.states, []
        return states, result


def hidden_loss(student: list[torch.Tensor], teacher: list[torch.Tensor], layer_map: list[int], mask) -> torch.Tensor:
    """The mean over mapped layers of the squared difference of token vectors, averaged over real tokens."""
    weights = mask.to(student[0].dtype)
    terms = []
    for s, t in zip(student, (teacher[j] for j in layer_map)):
        per_token = (s - t.to(s.dtype)).square().mean(-1)
        terms.append((per_token * weights).sum() / weights.sum().clamp(min=1.0))
    return torch.stack(terms).mean()


def layer_map(given: list[int] | None, student_layers: int, teacher_layers: int, kept: list[int] | None) -> list[int]:
    """The teacher layer each student layer matches: ``given``; else the layers a student cut from this
    teacher kept (each starts as that teacher layer); else spread evenly, first and last included."""
    found = given or (kept if kept is not None else modeling.spread_layers(teacher_layers, student_layers))
    if len(found) != student_layers or not all(0 <= j < teacher_layers for j in found):
        raise UsageError(
            f"--layer-map {found}: one teacher layer (0 to {teacher_layers - 1}) for each of the student's "
            f"{student_layers} layers"
        )
    return list(found)
