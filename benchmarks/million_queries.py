"""A million-query transfer set through `distill distill`: bounded memory, linear cost.

The transfer set is synthetic: CLINC150 "plus" training queries in turn, each with two of its words
replaced by words drawn from the CLINC150 training vocabulary (seeded), one query a line: 1,000,000 lines,
almost all distinct. The teacher is MiniLM-L6 cut to 2 layers and fine-tuned for 50 steps on CLINC150 plus
(the pass is measured here, not the teacher's quality); the student is MiniLM-L6 cut to 2 layers, trained
for 1,000 steps (batch 32) over the labelled rows and the transfer set.

Measured on the `distill distill` process: its peak resident memory (``wait4``), its resident memory and
the teacher's saved pieces every second, and, from the pieces' times, the seconds per 100,000 rows of the
teacher's pass, first to last.
    python benchmarks/million_queries.py          # about 25 minutes on 2 cores
    python benchmarks/million_queries.py --rows 50000   # a quick try of the same path
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from common import CLINC, DISTILL, OUT, REPO, machine, require_clinc, save, train_once

ROWS = int(sys.argv[sys.argv.index("--rows") + 1]) if "--rows" in sys.argv else 1_000_000  # --rows N: a try
WORK = OUT / "million" if ROWS == 1_000_000 else OUT / f"million-{ROWS}"
STEPS = 1_000


def transfer_set(path: Path) -> int:
    """Write the synthetic transfer set (see the module doc); returns the number of lines."""
    if path.is_file():
        return sum(1 for _ in path.open())
    train = [text for text, _ in json.loads(CLINC.read_text())["train"]]
    vocabulary = sorted({w for text in train for w in text.split()})
    rng = random.Random(0)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as f:
        for i in range(ROWS):
            words = train[i % len(train)].split()
            for _ in range(2):
                words[rng.randrange(len(words))] = rng.choice(vocabulary)
            f.write(" ".join(words) + "\n")
    tmp.replace(path)
    return ROWS


def watched(cmd: list[str], pieces: Path) -> dict:
    """Run ``cmd``; every second, its resident memory and the teacher's pieces saved so far (their times).
    Returns the peak resident memory (``wait4``), the samples, the pieces' times and the JSON it printed."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    stdout = WORK / "stdout.json"
    with stdout.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, cwd=REPO, env=env)
        samples, seen, start = [], {}, time.time()
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)  # its own peak memory, once it ends
            if pid:
                break
            rss = rss_mb(proc.pid)
            for p in pieces.glob("*.pieces/piece-*.safetensors") if pieces.is_dir() else ():
                try:
                    seen.setdefault(p.name, p.stat().st_mtime - start)
                except FileNotFoundError:  # the entry was written and its pieces removed meanwhile
                    pass
            samples.append({"s": round(time.time() - start, 1), "rss_mb": rss, "pieces": len(seen)})
            time.sleep(1.0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}")
    return {
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "samples": samples,
        "pieces_s": [seen[k] for k in sorted(seen)],
        "result": json.loads(stdout.read_text()),
        "wall_s": round(time.time() - start, 1),
    }


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except FileNotFoundError:
        return None
    return None


def per_100k(pieces_s: list[float], total: int) -> list[float]:
    """Seconds per 100,000 rows for each tenth of the teacher's pass, from the pieces' completion times
    (the first piece's start is not seen: the first tenth starts at the first piece's end)."""
    count = len(pieces_s)
    bounds = [k * total // count for k in range(count + 1)]
    durations = [(pieces_s[k] - pieces_s[k - 1], bounds[k + 1] - bounds[k]) for k in range(1, count)]
    parts = min(10, len(durations))  # a short try has fewer pieces than tenths
    out = []
    for d in range(parts):
        part = durations[round(d * len(durations) / parts) : round((d + 1) * len(durations) / parts)]
        out.append(round(sum(s for s, _ in part) / sum(n for _, n in part) * 100_000, 1))
    return out


def main() -> None:
    require_clinc()
    WORK.mkdir(parents=True, exist_ok=True)
    runs, cache = WORK / "runs", WORK / "cache"
    logs = WORK / "logs.txt"
    lines = transfer_set(logs)
    common = ("--dataset", CLINC, "--cache-dir", cache, "--max-length", "32")
    teacher = ("--student", "minilm-l6", "--student-layers", "2", "--max-steps", "50", *common)
    train_once("finetune", runs, "teacher-2l", *teacher)
    name = "student"
    if (runs / name).exists():
        sys.exit(f"{runs / name} exists: remove it to measure again")
    for entry in (cache / "teacher-logits").glob("*.safetensors"):
        entry.unlink()  # the pass is what is measured: never a cache hit
    flags = ("--teacher", runs / "teacher-2l", "--student", "minilm-l6", "--student-layers", "2",
             "--transfer-set", logs, "--max-steps", STEPS, "--batch-size", "32", *common)  # fmt: skip
    cmd = [*DISTILL, "distill", "--runs-dir", str(runs), "--name", name, *map(str, flags), "--json"]
    print("$ distill " + " ".join(cmd[3:]), file=sys.stderr, flush=True)
    watch = watched(cmd, cache / "teacher-logits")
    record = json.loads((runs / name / "run.json").read_text())
    total = sum(record["rows"][k] for k in ("labelled", "transfer", "augmented"))
    speeds = per_100k(watch["pieces_s"], total)
    results = {
        "machine": machine(),
        "command": " ".join(sys.argv),
        "distill": "distill " + " ".join(cmd[3:]).replace(str(REPO) + "/", ""),
        "transfer_lines": lines,
        "rows": record["rows"],
        "teacher_rows": total,
        "peak_rss_mb": watch["peak_rss_mb"],
        "wall_s": watch["wall_s"],
        "teacher_cache_s": record["teacher_cache_s"],
        "train_s": record["train_s"],
        "steps": STEPS,
        "seconds_per_100k_rows_by_tenth": speeds,
        "last_over_first": round(speeds[-1] / speeds[0], 3),
        "max_over_min": round(max(speeds) / min(speeds), 3),
        "rss_samples": watch["samples"],
        "validation": record["metrics"],
    }
    save("million_queries", results)
    shown = {k: v for k, v in results.items() if k not in ("machine", "rss_samples")}
    print(json.dumps(shown, indent=1))


if __name__ == "__main__":
    main()
