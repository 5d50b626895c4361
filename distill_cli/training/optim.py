"""Layer-wise learning-rate decay (``layer_decay``, as in ELECTRA and BEiT fine-tuning): the head at the run's
learning rate, each encoder layer below it at ``layer_decay`` times the one above, the embeddings lowest, so
that the body the pretrained encoder gave moves less than the new head."""

from __future__ import annotations

import torch

from distill_cli import modeling


def depths(model: torch.nn.Module) -> tuple[dict[int, int], int]:
    """Each parameter's depth, by its identity: 0 for the embeddings, i + 1 for encoder layer i (the layers
    ``modeling.layer_stack`` finds); and the number of layers. What is in neither sits above them (pooling,
    head): depth layers + 1."""
    owner, attr = modeling.layer_stack(model, "--layer-decay")
    stack = getattr(owner, attr)
    found = {id(p): 0 for p in model.base_model.embeddings.parameters()}
    for i, layer in enumerate(stack):
        found.update({id(p): i + 1 for p in layer.parameters()})
    return found, len(stack)


def layer_groups(model: torch.nn.Module, lr: float, decay: float, weight_decay: float, decayed: set[str]) -> list:
    """The optimizer's parameter groups by depth, each at ``decay ** (layers + 1 - depth) * lr``; weight
    decay on the parameters ``decayed`` names, as the ``Trainer`` applies it."""
    depth, layers = depths(model)
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        level = depth.get(id(param), layers + 1)
        group = groups.setdefault((level, name in decayed), {
            "params": [], "lr": lr * decay ** (layers + 1 - level),
            "weight_decay": weight_decay if name in decayed else 0.0,
        })  # fmt: skip
        group["params"].append(param)
    return list(groups.values())
