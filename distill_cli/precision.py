"""Numeric precision: ``precision: auto | fp32 | bf16 | fp16``, resolved once for the machine.

``auto`` is bf16 on a GPU that supports it, else fp16 on CUDA, else fp32 on the CPU: half the memory and
time a GPU run needs. It reaches the Trainer (``TrainingArguments.bf16``/``fp16``: mixed precision, fp32
master weights) and, as autocast, the passes the tool runs itself: the teacher's logits and the probe's
features. On the CPU, bf16 works (slowly: these CPUs have no bf16 arithmetic) and fp16 is refused. The
device is the one ``Trainer`` picks: CUDA when there is one, unless ``use_cpu``.
"""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve(precision: str) -> str:
    """``auto`` as this machine makes it; any other value as it is."""
    if precision != "auto":
        return precision
    if not torch.cuda.is_available():
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def problem(precision: str) -> str | None:
    """Why ``precision`` cannot run here, or None."""
    if resolve(precision) == "fp16" and not torch.cuda.is_available():
        return "precision fp16 needs a CUDA GPU (there is none here): use bf16 or fp32 on the CPU"
    return None


def training_arguments(precision: str) -> dict:
    """The ``TrainingArguments`` of a resolved precision."""
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def device() -> torch.device:
    """Where the tool's own passes run: the GPU the Trainer took for this process, else the CPU."""
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


def autocast(precision: str, device: torch.device | str = "cpu"):
    """Autocast to a resolved half precision on ``device``; nothing for fp32."""
    if precision not in DTYPES:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=DTYPES[precision])
