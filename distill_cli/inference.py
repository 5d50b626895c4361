"""Running a loaded classifier (PyTorch, ONNX or static, as ``modeling.load_for_inference`` gives it): one
forward pass over padded texts, batched passes in order, and its parameter count."""

from __future__ import annotations


def classify(model, tokenizer, texts: list[str], max_length: int):
    """Logits (float32 tensor) of one forward pass over ``texts`` padded together, tokenization included."""
    enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return model(**enc).logits.float()


def batched_logits(
    model, tokenizer, texts: list[str], max_length: int, batch_size: int = 64, progress: str | None = None
):
    """Logits (numpy) of ``texts`` in their order, ``batch_size`` at a time, without autograd, for any model
    every command calls (PyTorch, ONNX, static); with a bar titled ``progress``."""
    import numpy as np
    import torch

    from distill_cli.ui import Bar

    logits = []
    with torch.inference_mode(), Bar(progress or "", -(-len(texts) // batch_size), quiet=progress is None) as bar:
        for i in range(0, len(texts), batch_size):
            logits.append(classify(model, tokenizer, texts[i : i + batch_size], max_length).numpy())
            bar.advance()
    return np.concatenate(logits)


def parameter_count(model) -> int:
    if hasattr(model, "num_parameters"):
        return model.num_parameters()
    return sum(p.numel() for p in model.parameters())
