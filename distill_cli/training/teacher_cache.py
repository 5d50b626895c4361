"""The teacher-logit cache: the teacher runs once over the training texts, in eval mode and batched by length,
and its logits are stored under the cache, keyed by the teacher's weights and the texts. Every later epoch,
run and sweep reads them back instead of running the teacher again."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from distill_cli import modeling
from distill_cli.config import Config
from distill_cli.data.sources import sha, sha_file
from distill_cli.errors import DistillError
from distill_cli.files import atomic_file
from distill_cli.precision import autocast, device, resolve
from distill_cli.training.trainer import MODEL_INPUTS
from distill_cli.ui import Bar, warn


def model_fingerprint(ref: modeling.ModelRef, model_config) -> str:
    """Identifies a teacher's weights: file contents for a local model, the commit for a Hub model."""
    if ref.is_local:
        root = Path(ref.location)
        files = sorted(root.glob("*.safetensors")) + sorted(root.glob("pytorch_model*.bin"))
        files += [root / n for n in ("config.json", "tokenizer.json", "vocab.txt", "tokenizer_config.json")]
        return hashlib.sha256("".join(f.name + sha_file(f) for f in files if f.is_file()).encode()).hexdigest()
    return f"{ref.location}@{getattr(model_config, '_commit_hash', None)}"


@torch.no_grad()  # not inference_mode: the probe's head is fitted on these by autograd
def batched_outputs(
    model, tokenizer, texts: list[str], max_length: int, output, width: int, description: str, batch_size: int = 64,
    precision: str = "fp32",
) -> torch.Tensor:  # fmt: skip
    """``output(model, batch)`` (one row of ``width`` per text) for ``texts`` in their order, batched by length
    (little padding), in eval mode, under autocast to a (resolved) half ``precision``; float32 rows."""
    model.eval()
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    order = np.argsort([len(ids) for ids in enc["input_ids"]], kind="stable")
    out = torch.empty(len(texts), width)
    keys = [k for k in MODEL_INPUTS if k in enc]
    where = next(model.parameters()).device
    with Bar(description, len(texts)) as bar, autocast(precision, where):
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            batch = tokenizer.pad({k: [enc[k][i] for i in idx] for k in keys}, return_tensors="pt")
            out[torch.as_tensor(idx)] = output(model, batch.to(where)).float().cpu()
            bar.advance(len(idx))
    return out


def compute_logits(
    model, tokenizer, texts: list[str], max_length: int, description: str = "teacher logits", precision: str = "fp32"
):
    """Logits of ``model`` for ``texts`` in their order."""
    width = model.config.num_labels
    logits = lambda m, b: m(**b).logits  # noqa: E731
    return batched_outputs(model, tokenizer, texts, max_length, logits, width, description, precision=precision)


def teacher_logits(cfg: Config, ref: modeling.ModelRef, model_config, texts: list[str]) -> tuple[torch.Tensor, bool]:
    """The teacher's logits over ``texts``, from the cache when the same teacher saw the same texts. A cache
    entry is trusted only when its shape, checksum and values check out; a damaged one is computed again."""
    from safetensors.torch import save_file

    half = resolve(cfg.precision)
    parts = [model_fingerprint(ref, model_config), cfg.max_length, sha("\n".join(texts))]
    key = sha(json.dumps(parts if half == "fp32" else [*parts, half]))[:24]  # fp32 keys as they always were
    path = cfg.cache_root() / "teacher-logits" / f"{key}.safetensors"
    shape = (len(texts), model_config.num_labels)
    if path.is_file():
        cached = read_checked(path, shape)
        if cached is not None:
            return cached, True
        warn(f"the teacher-logit cache entry {path.name} is damaged; computing it again")
    tokenizer = modeling.load_tokenizer(ref, cfg)
    model = modeling.load_for_inference(ref, cfg).to(device())
    logits = compute_logits(model, tokenizer, texts, cfg.max_length, precision=half).contiguous()
    if not torch.isfinite(logits).all():
        raise DistillError(f"teacher '{ref.spec}' gives non-finite logits (NaN or infinity): it cannot teach")
    metadata = {"teacher": ref.spec, "rows": str(shape[0]), "sha256": tensor_digest(logits)}
    with atomic_file(path) as tmp:
        save_file({"logits": logits}, str(tmp), metadata=metadata)
    return logits, False


def tensor_digest(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.numpy().tobytes()).hexdigest()


def read_checked(path: Path, shape: tuple[int, int]) -> torch.Tensor | None:
    """The cached logits if the file reads, has the expected shape, matches its checksum and holds only
    finite values; else None."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            digest = (f.metadata() or {}).get("sha256")
            logits = f.get_tensor("logits")
    except Exception:  # noqa: BLE001 - a truncated or garbled file raises several kinds of error
        return None
    ok = tuple(logits.shape) == shape and digest == tensor_digest(logits) and bool(torch.isfinite(logits).all())
    return logits if ok else None
