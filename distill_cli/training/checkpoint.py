"""Pickle-free training checkpoints.

``Trainer`` saves optimizer, scheduler and RNG states with ``torch.save`` and reads them back with
``torch.load``. These functions store the same states as safetensors (tensors) plus JSON (the rest), so
resuming a run never unpickles anything.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

OPTIMIZER = "optimizer.safetensors"
SCHEDULER = "scheduler.json"


def _meta(path: Path) -> dict:
    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["distill"])


def save_optimizer(optimizer: torch.optim.Optimizer, path: Path) -> None:
    state = optimizer.state_dict()
    tensors, extras = {}, {}
    for pid, entry in state["state"].items():
        extras[str(pid)] = {k: v for k, v in entry.items() if not torch.is_tensor(v)}
        tensors.update({f"{pid}.{k}": v.contiguous() for k, v in entry.items() if torch.is_tensor(v)})
    meta = {"param_groups": state["param_groups"], "extras": extras}
    save_file(tensors, str(path), metadata={"distill": json.dumps(meta)})


def load_optimizer(optimizer: torch.optim.Optimizer, path: Path) -> None:
    meta = _meta(path)
    state: dict[int, dict] = {int(pid): dict(extra) for pid, extra in meta["extras"].items()}
    for key, tensor in load_file(str(path)).items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = tensor
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_scheduler(scheduler, path: Path) -> None:
    path.write_text(json.dumps(scheduler.state_dict()))


def load_scheduler(scheduler, path: Path) -> None:
    scheduler.load_state_dict(json.loads(path.read_text()))


def rng_file(directory: Path, rank: int, world_size: int) -> Path:
    return directory / ("rng_state.safetensors" if world_size <= 1 else f"rng_state_{rank}.safetensors")


def save_rng(path: Path) -> None:
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors = {"torch_cpu": torch.random.get_rng_state(), "numpy_keys": torch.from_numpy(keys.astype(np.int64))}
    meta = {"python": [version, list(mt), gauss], "numpy": [kind, int(pos), int(has_gauss), float(cached)]}
    save_file(tensors, str(path), metadata={"distill": json.dumps(meta)})


def load_rng(path: Path) -> None:
    meta = _meta(path)
    tensors = load_file(str(path))
    version, mt, gauss = meta["python"]
    random.setstate((version, tuple(mt), gauss))
    kind, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, tensors["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.random.set_rng_state(tensors["torch_cpu"])


def checkpoint_problem(ckpt: Path, world_size: int) -> str | None:
    """What makes a checkpoint unusable to resume from, naming the file; None when every file reads.
    Resuming without its optimizer, scheduler or RNG state would silently train a different run."""
    ranks = [rng_file(ckpt, r, world_size).name for r in range(world_size)]
    needed = ["trainer_state.json", SCHEDULER, OPTIMIZER, *ranks]
    weights = [p.name for p in ckpt.glob("*.safetensors") if p.name != OPTIMIZER and not p.name.startswith("rng_state")]
    for name in [*needed, *(weights or ["model.safetensors"])]:
        path = ckpt / name
        if not path.is_file():
            return f"{name} is missing"
        try:
            if name.endswith(".json"):
                json.loads(path.read_text())
            else:
                load_file(str(path))  # every tensor: a truncated file fails here
        except Exception as err:  # noqa: BLE001 - any failure to read means the file cannot be trusted
            return f"{name} is damaged ({type(err).__name__})"
    return None
