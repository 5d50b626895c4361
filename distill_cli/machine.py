"""The machine and software a measurement ran on: benchmarks record it, and the evaluation report shows it
(the CPU kind changes what int8 kernels and float rounding give)."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path


def machine() -> dict:
    import torch
    import transformers

    from distill_cli import __version__

    cpu = "unknown"
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "distill": __version__,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
