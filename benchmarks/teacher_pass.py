"""The teacher's pass shared by processes: one process with 2 threads against `torchrun --nproc_per_node 2`
(one thread each) on this 2-core machine, over CLINC150 "plus" train (15,250 queries), the teacher the
fine-tuned MiniLM-L6 of `open_set.py` (run that first). Each pass writes its cache entry into a fresh cache;
the two entries are compared tensor by tensor.
    python benchmarks/teacher_pass.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import CLINC, OUT, machine, require_clinc, save

TEACHER = OUT / "open-set" / "minilm-plus"
WORK = OUT / "teacher-pass"


def worker(cache: Path) -> None:
    """One process of the pass (under torchrun: one of N); rank 0 prints its seconds."""
    import torch
    import torch.distributed as dist

    from distill_cli.config import Config
    from distill_cli.data.columns import normalise
    from distill_cli.data.sources import read_source
    from distill_cli.modeling import load_model_config, resolve_model
    from distill_cli.training.teacher_cache import teacher_logits

    if "RANK" in os.environ:
        dist.init_process_group("gloo")
    cfg = Config(cache_dir=cache, max_length=64)
    ref = resolve_model(str(TEACHER), cfg)
    splits, _, _ = normalise(read_source(str(CLINC)), cfg)
    texts = list(splits["train"]["text"])
    start = time.perf_counter()
    logits, reused = teacher_logits(cfg, ref, load_model_config(ref, cfg), texts)
    seconds = time.perf_counter() - start
    if int(os.environ.get("RANK", 0)) == 0:
        threads = torch.get_num_threads()
        print(json.dumps({"seconds": seconds, "rows": len(texts), "threads": threads, "reused": reused}))
    if dist.is_initialized():
        dist.destroy_process_group()


def run(cmd: list[str], threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=Path(__file__).parent)
    return json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])


def main() -> None:
    require_clinc()
    if not (TEACHER / "run.json").is_file():
        sys.exit(f"{TEACHER} not found: run benchmarks/open_set.py first")
    import shutil

    import torch
    from safetensors.torch import load_file

    shutil.rmtree(WORK, ignore_errors=True)
    me = [sys.executable, __file__, "--worker"]
    results = {"machine": machine(), "passes": {}}
    for name, cmd, threads in (
        ("one process, 2 threads", [*me, str(WORK / "one")], 2),
        ("torchrun, 2 processes of 1 thread", [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node",
                                               "2", "--master_port", "29533", *me[1:], str(WORK / "two")], 1),
    ):  # fmt: skip
        results["passes"][name] = run(cmd, threads)
        print(name, results["passes"][name], file=sys.stderr)
    one, two = (load_file(str(next((WORK / k / "teacher-logits").glob("*.safetensors"))))["logits"]
                for k in ("one", "two"))  # fmt: skip
    names = {k: next((WORK / k / "teacher-logits").glob("*.safetensors")).name for k in ("one", "two")}
    results["same_key"] = names["one"] == names["two"]
    results["max_abs_difference"] = float((one - two).abs().max())
    results["argmax_agreement"] = float((one.argmax(-1) == two.argmax(-1)).float().mean())
    results["allclose_1e-4"] = bool(torch.allclose(one, two, atol=1e-4))
    save("teacher_pass", results)
    print(json.dumps({k: v for k, v in results.items() if k != "machine"}, indent=1))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(Path(sys.argv[2]))
    else:
        main()
