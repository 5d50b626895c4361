"""Layer-wise learning-rate decay (``layer_decay``, as in ELECTRA and BEiT fine-tuning): the head at the run's
learning rate, each encoder layer below it at ``layer_decay`` times the one above, the embeddings lowest, so
that the body the pretrained encoder gave moves less than the new head."""

from __future__ import annotations

import re

import torch

LAYER = re.compile(r"\.layers?\.(\d+)\.")  # encoder.layer.3. (BERT, MPNet), layers.3. (others)


def depth(name: str, layers: int) -> int:
    """0 for the embeddings, i + 1 for encoder layer i, ``layers + 1`` for what sits above (pooling, head)."""
    found = LAYER.search(name)
    if found:
        return int(found.group(1)) + 1
    return 0 if "embeddings." in name else layers + 1


def layer_groups(model: torch.nn.Module, lr: float, decay: float, weight_decay: float, decayed: set[str]) -> list:
    """The optimizer's parameter groups by depth, each at ``decay ** (layers + 1 - depth) * lr``; weight
    decay on the parameters ``decayed`` names, as the ``Trainer`` applies it."""
    layers = model.config.num_hidden_layers
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        level = depth(name, layers)
        group = groups.setdefault((level, name in decayed), {
            "params": [], "lr": lr * decay ** (layers + 1 - level),
            "weight_decay": weight_decay if name in decayed else 0.0,
        })  # fmt: skip
        group["params"].append(param)
    return list(groups.values())
