"""Running a loaded classifier (PyTorch, ONNX or static, as ``modeling.load_for_inference`` gives it): one
forward pass over padded texts, with the pooled features the head reads when asked (for the feature
out-of-scope scores), batched passes in order, and its parameter count."""

from __future__ import annotations

from contextlib import contextmanager


def final_linear(model):
    """The layer of a PyTorch classifier that turns the pooled features into logits."""
    from torch import nn

    from distill_cli.errors import UsageError

    head = getattr(model, "classifier", None)
    head = getattr(head, "out_proj", head)  # RoBERTa-style heads end in out_proj
    if not isinstance(head, nn.Linear):
        raise UsageError(f"cannot find the linear head of this {type(model).__name__}")
    return head


@contextmanager
def pooled_output(model):
    """``(output, width)``: ``output(model, batch)`` gives the pooled features of a PyTorch classifier, what
    its head reads, caught on their way in (any architecture), ``width`` wide; the hook goes on exit."""
    head, captured = final_linear(model), []
    hook = head.register_forward_pre_hook(lambda _module, args: captured.append(args[0]))

    def features(m, batch):
        captured.clear()
        m(**batch)
        return captured[0]

    try:
        yield features, head.in_features
    finally:
        hook.remove()


def classify(model, tokenizer, texts: list[str], max_length: int, features: bool = False):
    """Logits (float32 tensor) of one forward pass over ``texts`` padded together, tokenization included;
    with ``features``, (logits, pooled features): what the head reads, caught on its way in for a PyTorch
    model, the graph's ``features`` output for ONNX, the mean vector for a static one."""
    import torch

    enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    if isinstance(model, torch.nn.Module):  # on the model's device (a GPU for the rule's passes after training)
        enc = enc.to(next(model.parameters()).device)
    if not features:
        return model(**enc).logits.float().cpu()
    if not isinstance(model, torch.nn.Module):  # ONNX and static: they give their features themselves
        out = model(**enc, features=True)
        return out.logits.float(), out.hidden_states[-1].float()
    logits, pooled = classify_encoded(model, enc)
    return logits.float().cpu(), pooled.float().cpu()


def classify_encoded(model, encoded: dict):
    """(logits, pooled features) of a PyTorch classifier on tokenized inputs: the features caught on their
    way into the head (``final_linear``), so that any architecture's own pooling is the one measured."""
    captured = []
    hook = final_linear(model).register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    try:
        logits = model(**encoded).logits
    finally:
        hook.remove()
    return logits, captured[0]


def batched_outputs(
    model, tokenizer, texts: list[str], max_length: int, batch_size: int = 64, progress: str | None = None,
    features: bool = False,
):  # fmt: skip
    """Logits (numpy) of ``texts`` in their order, ``batch_size`` at a time, without autograd, for any model
    every command calls (PyTorch, ONNX, static), and the pooled features (or None); with a bar titled
    ``progress``."""
    import numpy as np
    import torch

    from distill_cli.ui import Bar

    logits, pooled = [], []
    with torch.inference_mode(), Bar(progress or "", -(-len(texts) // batch_size), quiet=progress is None) as bar:
        for i in range(0, len(texts), batch_size):
            out = classify(model, tokenizer, texts[i : i + batch_size], max_length, features)
            logits.append((out[0] if features else out).numpy())
            if features:
                pooled.append(out[1].numpy())
            bar.advance()
    return np.concatenate(logits), np.concatenate(pooled) if features else None


def batched_logits(model, tokenizer, texts: list[str], max_length: int, batch_size: int = 64, progress=None):
    """The logits of ``batched_outputs``."""
    return batched_outputs(model, tokenizer, texts, max_length, batch_size, progress)[0]


def parameter_count(model) -> int:
    if hasattr(model, "num_parameters"):
        return model.num_parameters()
    return sum(p.numel() for p in model.parameters())
