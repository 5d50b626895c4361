"""`distill predict` on a pipe that stays open (`tail -f logs | distill predict run --json`): seconds from a
line being written to its answer, once the model is loaded (a first line is answered before timing). The
model: the fp32 demo teacher of `precision.py` (MiniLM-L6, run that first).
    python benchmarks/streaming.py
"""

from __future__ import annotations

import json
import os
import selectors
import statistics
import subprocess
import sys
import time

from common import DISTILL, OUT, REPO, machine, save

RUN = OUT / "precision" / "demo-fp32"
LINES = ["play some jazz", "what is the weather tomorrow", "set an alarm for 7", "book a table for two"] * 5


def answer_seconds(proc, text: str, selector) -> float:
    start = time.perf_counter()
    proc.stdin.write(f"{text}\n".encode())
    proc.stdin.flush()
    if not selector.select(60):
        sys.exit("no answer within 60 s")
    line = proc.stdout.readline()
    assert json.loads(line)["text"] == text
    return time.perf_counter() - start


def main() -> None:
    if not (RUN / "run.json").is_file():
        sys.exit(f"{RUN} not found: run benchmarks/precision.py first")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([*DISTILL, "predict", str(RUN), "--json"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, cwd=REPO, env=env)  # fmt: skip
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    start = time.perf_counter()
    first = answer_seconds(proc, "hello there", selector)  # loads the model
    load_s = time.perf_counter() - start
    seconds = []
    for text in LINES:
        seconds.append(answer_seconds(proc, text, selector))
        time.sleep(0.2)  # a live pipe: lines come one at a time
    proc.stdin.close()
    proc.wait(timeout=60)
    results = {"machine": machine(), "first_answer_with_load_s": round(first, 3), "load_s": round(load_s, 3),
               "answer_s": {"median": statistics.median(seconds), "max": max(seconds), "n": len(seconds)}}  # fmt: skip
    save("streaming", results)
    print(json.dumps(results["answer_s"]), f"first answer (model loading included): {first:.2f} s")


if __name__ == "__main__":
    main()
