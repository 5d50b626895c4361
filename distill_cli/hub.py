"""The Hugging Face Hub: is it reachable, and publishing a run to it (``distill push``)."""

from __future__ import annotations

import functools
import json
import os
import re
import socket
from fnmatch import fnmatch
from pathlib import Path
from urllib.parse import urlparse

TRUE = {"1", "true", "yes", "on"}


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


@functools.cache
def hub_unreachable_reason(timeout: float = 3.0) -> str | None:
    """Why the Hub cannot be used right now, or None. One quick TCP connect instead of the client's
    retry loop, which spends ~25 s before it gives up on a machine without network."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in TRUE:
        return "offline mode (HF_HUB_OFFLINE=1)"
    url = urlparse(endpoint())
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as err:
        return f"cannot connect to {url.scheme}://{url.netloc} ({err.strerror or err})"
    return None


# --------------------------------------------------------------------------------------------- push

# What a run folder may publish; everything else (pickles, checkpoints, optimizer states) stays home.
PUBLISH = (
    "*.safetensors",
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "run.json",
    "eval_results.json",
)
NEVER = ("*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt", "*.npy", "optimizer*", "scheduler*", "rng_state*")
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

CARD = """---
{{ card_data }}
---

# {{ model_name }}

An intent classifier {{ 'distilled from ' + teacher if teacher else 'fine-tuned' }}
with `distill` on {{ dataset }}{{ ', starting from ' + base_model if base_model else '' }}.

## Results

{{ results }}

## Training

| hyperparameter | value |
|---|---|
{% for k, v in hyperparameters.items() -%}
| {{ k }} | {{ v }} |
{% endfor %}
## Usage

```python
from transformers import pipeline

classifier = pipeline("text-classification", model="{{ repo_id }}")
classifier("{{ example }}")
```
"""


def publishable_files(run_dir: Path) -> list[Path]:
    """The run's own top-level files that belong on the Hub: no pickles, no links out of the folder."""
    files = []
    for path in sorted(run_dir.iterdir()):
        if path.is_symlink() or not path.is_file():
            continue
        if any(fnmatch(path.name, p) for p in PUBLISH) and not any(fnmatch(path.name, p) for p in NEVER):
            files.append(path)
    return files


def hub_origin(spec: str | None, runs_dir: Path, depth: int = 0, follow_runs: bool = True) -> str | None:
    """The Hub model ``spec`` is, or (``follow_runs``) that a run descends from through the runs it started from."""
    from distill_cli.modeling import BUILTIN_ALIASES, HUB_ID

    if not spec or depth > 10:
        return None
    if spec in BUILTIN_ALIASES:
        return BUILTIN_ALIASES[spec][1]
    for candidate in (Path(spec), runs_dir / spec):
        if (candidate / "run.json").is_file():
            if not follow_runs:
                return None
            return hub_origin(json.loads((candidate / "run.json").read_text())["student"]["spec"], runs_dir, depth + 1)
    return spec if HUB_ID.match(spec) and not Path(spec).exists() and "/" in spec else None


def results_table(evals: dict | None, name: str) -> str:
    if not evals:
        return "Not evaluated yet: run `distill evaluate TEACHER RUN` before pushing to add the comparison."
    models = evals["models"]
    rows = [
        "| model | accuracy | in-scope accuracy | out-of-scope recall | latency ms | size MB |",
        "|---|---|---|---|---|---|",
    ]

    def pct(v):
        return "—" if v is None else f"{v * 100:.2f}"

    for m in models:
        label = f"**{name}** (this model)" if m["path"] == evals["result"]["path"] else m["model"]
        rows.append(
            f"| {label} | {pct(m['accuracy'])} | {pct(m['in_scope_accuracy'])} | {pct(m['oos_recall'])} | "
            f"{m['latency_ms_mean']:.2f} | {m['size_mb']:.1f} |"
        )
    return (
        f"On the {evals['split']} split of {evals['dataset']} ({evals['examples']:,} queries); latency of one "
        f"query on CPU with {evals['threads']} threads.\n\n" + "\n".join(rows)
    )


def model_card(run_dir: Path, repo_id: str, runs_dir: Path) -> str:
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    run = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    evals = (
        json.loads((run_dir / "eval_results.json").read_text()) if (run_dir / "eval_results.json").is_file() else None
    )
    cfg = run.get("config", {})
    dataset = (run.get("dataset") or {}).get("source") or cfg.get("dataset") or "an intent dataset"
    dataset_id = dataset.removeprefix("hub:").split(":")[0] if dataset.startswith("hub:") else Path(dataset).stem
    eval_results = []
    if evals:
        me = evals["result"]
        for key, metric_type, metric_name in (
            ("accuracy", "accuracy", "Accuracy"),
            ("in_scope_accuracy", "accuracy", "In-scope accuracy"),
            ("oos_recall", "recall", "Out-of-scope recall"),
        ):
            if me.get(key) is not None:
                eval_results.append(
                    EvalResult(
                        task_type="text-classification",
                        dataset_type=dataset_id,
                        dataset_name=dataset,
                        dataset_split=evals["split"],
                        metric_type=metric_type,
                        metric_name=metric_name,
                        metric_value=round(me[key], 4),
                    )
                )
    base = hub_origin(run.get("student", {}).get("spec"), runs_dir)
    teacher = (run.get("teacher") or {}).get("spec")
    data = ModelCardData(
        language="en",
        library_name="transformers",
        pipeline_tag="text-classification",
        tags=["text-classification", "intent-classification", "distillation" if teacher else "fine-tuned"],
        base_model=base,
        model_name=repo_id.split("/")[-1],
        eval_results=eval_results or None,
        datasets=[dataset_id] if dataset.startswith("hub:") else None,
    )
    keys = [
        "alpha",
        "temperature",
        "epochs",
        "learning_rate",
        "batch_size",
        "weight_decay",
        "warmup",
        "seed",
        "student_layers",
        "max_length",
    ]
    hyper = {k: cfg.get(k) for k in keys if cfg.get(k) is not None}
    if not teacher:
        hyper.pop("temperature", None)
    if run.get("student", {}).get("layers_kept"):
        hyper["layers kept (of the initial checkpoint)"] = run["student"]["layers_kept"]
    teacher_hub = hub_origin(teacher, runs_dir, follow_runs=False)  # linked only if it is on the Hub itself
    card = ModelCard.from_template(
        data,
        template_str=CARD,
        model_name=repo_id.split("/")[-1],
        repo_id=repo_id,
        dataset=dataset,
        teacher=teacher and (f"[{teacher}](https://huggingface.co/{teacher_hub})" if teacher_hub else f"`{teacher}`"),
        base_model=base,
        results=results_table(evals, repo_id.split("/")[-1]),
        hyperparameters=hyper,
        example="how do i set an alarm for 7 am",
    )
    return str(card)


def push(
    cfg, model: str, repo_id: str, private: bool = False, commit_message: str | None = None, dry_run: bool = False
) -> dict:
    """Publish a run folder to ``repo_id`` in one commit; ``dry_run`` shows what would go and touches nothing."""
    from distill_cli.errors import DistillError, UsageError
    from distill_cli.modeling import resolve_model

    if not REPO_ID.match(repo_id):
        raise UsageError(f"--repo-id {repo_id!r}: expected OWNER/NAME")
    ref = resolve_model(model, cfg)
    if not ref.is_local:
        raise UsageError(f"push publishes a local run: '{model}' is not a run name or folder")
    run_dir = Path(ref.location)
    files = publishable_files(run_dir)
    if not any(f.suffix == ".safetensors" for f in files):
        raise UsageError(f"{run_dir} has no safetensors weights to publish")
    card = model_card(run_dir, repo_id, cfg.runs_dir)
    listing = [{"path": f.name, "bytes": f.stat().st_size} for f in files]
    listing.append({"path": "README.md", "bytes": len(card.encode())})
    result = {"repo_id": repo_id, "files": listing, "card": card}
    if dry_run:
        return result

    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise UsageError("not logged in: run `hf auth login` or set HF_TOKEN")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in TRUE:
        raise DistillError("cannot push in offline mode (HF_HUB_OFFLINE=1); unset it to publish")
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(endpoint=endpoint(), token=token)
    ops = [CommitOperationAdd(path_in_repo=f.name, path_or_fileobj=str(f)) for f in files]
    ops.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card.encode()))
    try:
        url = api.create_repo(repo_id, private=private or None, exist_ok=True, repo_type="model")
        commit = api.create_commit(repo_id, ops, commit_message=commit_message or f"Upload {run_dir.name} with distill")
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        why = {
            401: "authentication failed: the token is invalid or expired",
            403: f"permission denied: the token cannot write to {repo_id}",
            404: f"not found: {repo_id} (check the owner name)",
        }.get(status, f"the Hub answered {status}")
        raise DistillError(f"push to {repo_id} failed ({status}): {why}".replace(token, "***")) from None
    except OSError as err:  # connection refused, DNS failure, timeouts (httpx errors are not OSError)
        raise DistillError(f"push to {repo_id} failed: cannot reach {endpoint()} ({type(err).__name__})") from None
    except Exception as err:
        if type(err).__module__.startswith(("httpx", "httpcore")):
            raise DistillError(f"push to {repo_id} failed: cannot reach {endpoint()} ({type(err).__name__})") from None
        raise
    return {**result, "url": str(url), "commit": getattr(commit, "commit_url", None)}
