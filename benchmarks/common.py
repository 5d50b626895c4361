"""Helpers shared by the benchmark scripts: run the real CLI, describe the machine, write results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from distill_cli.machine import machine  # noqa: F401 - the benchmarks import it from here

REPO = Path(__file__).resolve().parents[1]
CLINC = REPO.parent / "shared" / "datasets" / "clinc150" / "data_oos_plus.json"
OUT = REPO / "benchmarks" / "out"
DISTILL = [sys.executable, "-m", "distill_cli"]


def require_clinc() -> Path:
    if not CLINC.is_file():
        sys.exit(f"CLINC150 not found at {CLINC}: the benchmarks need ../shared/datasets/clinc150")
    return CLINC


def distill(*args: str, env: dict | None = None, entry: list[str] = DISTILL) -> dict:
    """Run `distill ARGS --json` (through ``entry``, a patched one for a study); progress streams to our
    stderr, the JSON object is returned."""
    cmd = [*entry, *map(str, args), "--json"]
    print("$ distill " + " ".join(map(str, args)), file=sys.stderr, flush=True)
    start = time.perf_counter()
    proc = subprocess.run(
        cmd, stdout=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    )
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}")
    result = json.loads(proc.stdout)
    result["wall_s"] = round(time.perf_counter() - start, 2)
    return result


def train_once(
    command: str, runs: Path, name: str, *flags, reuse_only: bool = False, env: dict | None = None,
    entry: list[str] = DISTILL,
) -> dict | None:  # fmt: skip
    """The run's run.json, running `distill COMMAND --name NAME FLAGS` first unless the run exists with the same
    command, flags and data recipes (so an interrupted benchmark goes on where it stopped). A run asked with other
    flags, or trained before the tool's recipe defaults changed, is moved aside (``NAME.stale-N``) and trained
    again; one trained before this record was kept is reused, and said so. ``reuse_only``: None for a run that
    does not exist."""
    from distill_cli.training.plan import recipe_defaults

    record, asked_file = runs / name / "run.json", runs / f"{name}.asked.json"
    asked = {"command": command, "flags": [str(f) for f in flags], "recipe_defaults": recipe_defaults()}
    earlier = json.loads(asked_file.read_text()) if asked_file.is_file() else None
    if record.is_file() and earlier not in (None, asked):
        stale = next(runs / f"{name}.stale-{i}" for i in range(1, 1000) if not (runs / f"{name}.stale-{i}").exists())
        (runs / name).rename(stale)
        asked_file.rename(stale.with_name(f"{stale.name}.asked.json"))
        print(f"{runs / name}: asked with other flags or recipe defaults, moved to {stale.name}", file=sys.stderr)
    if record.is_file():
        print(f"reusing {runs / name}" + ("" if earlier else " (no record of its flags)"), file=sys.stderr)
    elif reuse_only:
        return None
    else:
        wall_s = distill(command, "--runs-dir", runs, "--name", name, *flags, env=env, entry=entry)["wall_s"]
        asked_file.write_text(json.dumps(asked, indent=1))
        print(f"{name}: {wall_s:.0f} s", file=sys.stderr)
    return json.loads(record.read_text())


def pct(value: float | None) -> str:
    """A share as a percentage with two decimals, for the markdown tables; — for none."""
    return "—" if value is None else f"{value * 100:.2f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table for BENCHMARKS.md: the header, its rule, a line a row."""
    line = lambda cells: "| " + " | ".join(map(str, cells)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "---|" * len(header), *map(line, rows)])


def save(name: str, payload: dict) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    print(f"results written to {path}", file=sys.stderr)
    return path


def frozen_minilm(layers: int | None = None, max_length: int = 64):
    """The peers' MiniLM-L6 encoder (``frozen_encoder``)."""
    return frozen_encoder("minilm-l6", layers, max_length)


def frozen_encoder(alias: str, layers: int | None = None, max_length: int = 64):
    """The peers' encoder, pinned: a frozen sentence encoder (all-MiniLM-L6-v2 as ``minilm-l6``,
    all-mpnet-base-v2 as ``mpnet-base``; optionally its first/middle/last ``layers``), mean pooling, L2
    normalisation as the checkpoints' own `2_Normalize` module does. Returns ``encode(texts)``."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from distill_cli.config import Config
    from distill_cli.modeling import keep_layers, resolve_model
    from distill_cli.pooling import mean_pool

    path = resolve_model(alias, Config()).location
    tokenizer, body = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    if layers:
        keep_layers(body, layers)

    @torch.no_grad()
    def encode(texts):
        out = []
        for i in range(0, len(texts), 128):
            batch = tokenizer(texts[i : i + 128], padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt")  # fmt: skip
            pooled = mean_pool(body(**batch).last_hidden_state, batch["attention_mask"])
            out.append(torch.nn.functional.normalize(pooled))
        return torch.cat(out).numpy()

    return encode
