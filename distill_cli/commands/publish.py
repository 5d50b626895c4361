"""``distill push``: publish a run to the Hugging Face Hub in one commit, with a model card.

Only the run's own weights, config, tokenizer, ``run.json`` and ``eval_results.json`` go; pickles,
checkpoints and optimizer states never do, and the token is never printed or written.
"""

from __future__ import annotations

import json
import re
from fnmatch import fnmatch
from pathlib import Path

from distill_cli.config import Config
from distill_cli.errors import DistillError, UsageError
from distill_cli.hub import endpoint, is_hub_id, offline_mode, redact_url
from distill_cli.metrics import QUALITY
from distill_cli.modeling import BUILTIN_ALIASES, resolve_model
from distill_cli.runs import RunRecord
from distill_cli.static import encoder_spec
from distill_cli.weights import check_weights

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
    "modules.json",
    "sentence_bert_config.json",
    "model.onnx",
    "export.json",
)
# The sentence-transformers modules of a mean-pooled run (see distill_cli/pooling.py).
PUBLISH_NESTED = ("1_Pooling/config.json", "2_Dense/config.json", "2_Dense/model.safetensors")
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

{% if onnx -%}
An ONNX graph (`model.onnx`{{ ', int8 weights' if quantized else '' }}) with its tokenizer; the pooling is
inside the graph:

```python
import numpy as np
import onnxruntime as ort
from huggingface_hub import snapshot_download
from transformers import AutoConfig, AutoTokenizer

folder = snapshot_download("{{ repo_id }}")
session = ort.InferenceSession(f"{folder}/model.onnx")
tokenizer, labels = AutoTokenizer.from_pretrained(folder), AutoConfig.from_pretrained(folder).id2label
names = [i.name for i in session.get_inputs()]
enc = tokenizer(["{{ example }}"], return_tensors="np")
logits = session.run(["logits"], {n: enc[n].astype(np.int64) for n in names})[0]
probs = np.exp(logits - logits.max(-1, keepdims=True))
probs /= probs.sum(-1, keepdims=True)
score, intent = probs[0].max(), labels[int(probs[0].argmax())]
```
{%- elif pooling == "static" -%}
A static model ([model2vec](https://github.com/MinishLab/model2vec)): one vector per token, averaged, and a
small head. It needs numpy, not torch:

```python
from model2vec.inference import StaticModelPipeline

pipeline = StaticModelPipeline.from_pretrained("{{ repo_id }}")
probs = pipeline.predict_proba(["{{ example }}"])[0]
score, intent = probs.max(), pipeline.classes_[probs.argmax()]
```
{%- elif pooling == "mean" -%}
The encoder reads a sentence as the mean of its token vectors, as it was pretrained to; the folder is a
sentence-transformers model whose last module (`2_Dense`) gives the logits:

```python
from sentence_transformers import SentenceTransformer

model = SentenceTransformer("{{ repo_id }}")
probs = model.encode(["{{ example }}"], convert_to_tensor=True).softmax(-1)
labels = model[0].auto_model.config.id2label
score, index = probs[0].max(-1)
intent = labels[int(index)]
```
{%- else -%}
```python
from transformers import pipeline

classifier = pipeline("text-classification", model="{{ repo_id }}")
result = classifier("{{ example }}")[0]
intent, score = result["label"], result["score"]
```
{%- endif %}
{% if oos_threshold is not none %}
Out of scope: answer `{{ oos_label }}` when `score < {{ oos_threshold }}`. This threshold on the top
probability was chosen on the validation split for an expected {{ oos_share }} share of out-of-scope
queries (`distill predict` applies it).
{%- endif %}

With `distill`: `distill predict MODEL "{{ example }}"`.
"""


# Published as public copies (see ``public_json``): they record where things were on this machine.
RECORDS = ("run.json", "export.json", "eval_results.json")


def public_name(value: str) -> str:
    """A local path as the name a user knows it by (``/home/me/data/plus.json`` -> ``plus.json``); anything
    else (a Hub id ``owner/name``, a run name, a built-in alias) as it is."""
    path = Path(value).expanduser()
    looks_local = path.is_absolute() or value.startswith(("~", "./", "../")) or value.count("/") > 1
    return path.name if looks_local or ("/" in value and path.exists()) else value


def public_json(data):
    """A copy of a JSON record fit to publish: every local path becomes a name (``public_name``); labels are
    the user's own words and stay as they are."""
    if isinstance(data, dict):
        return {k: v if k in ("labels", "oos_label") else public_json(v) for k, v in data.items()}
    if isinstance(data, list):
        return [public_json(v) for v in data]
    return public_name(data) if isinstance(data, str) else data


def public_record(file: Path) -> bytes:
    """What ``push`` uploads for ``run.json``, ``export.json`` or ``eval_results.json``: no local path, no
    cache key, no folder of this machine; still a valid record for the commands that read it."""
    data = json.loads(file.read_text())
    if file.name == "run.json":
        data["dataset"]["path"] = data["dataset"]["source"]  # its cache folder, whose name is a cache key
        data["config"].update(runs_dir="runs", cache_dir=None, output=None)
    return json.dumps(public_json(data), indent=2).encode()


def file_content(file: Path) -> str | bytes:
    """The bytes ``push`` uploads for ``file`` (a public copy of a record), or its path to upload as it is."""
    return public_record(file) if file.name in RECORDS else str(file)


def content_size(file: Path) -> int:
    content = file_content(file)
    return len(content) if isinstance(content, bytes) else file.stat().st_size


def publishable_files(run_dir: Path) -> list[Path]:
    """The run's own files that belong on the Hub: no pickles, no links out of the folder."""
    top = [p for p in sorted(run_dir.iterdir()) if any(fnmatch(p.name, pattern) for pattern in PUBLISH)]
    nested = [run_dir / name for name in PUBLISH_NESTED]
    return [
        p
        for p in top + nested
        if p.is_file() and not p.is_symlink() and not any(fnmatch(p.name, pattern) for pattern in NEVER)
    ]


def hub_origin(spec: str | None, runs_dir: Path, depth: int = 0, follow_runs: bool = True) -> str | None:
    """The Hub model ``spec`` is, or (``follow_runs``) that a run descends from through the runs it started from."""
    if not spec or depth > 10:
        return None
    spec = encoder_spec(spec) or spec  # a static student descends from its encoder
    if spec in BUILTIN_ALIASES:
        return BUILTIN_ALIASES[spec][1]
    for candidate in (Path(spec), runs_dir / spec):
        record = RunRecord.read(candidate)
        if record is not None:
            return hub_origin(record.student.spec, runs_dir, depth + 1) if follow_runs else None
    # A card links owner/name ids only: a bare name is more likely a local word than a canonical Hub model.
    return spec if is_hub_id(spec) and "/" in spec and not Path(spec).exists() else None


def results_table(evals: dict | None, name: str, run: RunRecord | None = None) -> str:
    shown = [m for m in QUALITY if m.card_type]
    if not evals:
        if run is None or not run.metrics:
            return "Not evaluated yet: run `distill evaluate TEACHER RUN` before pushing to add the comparison."
        values = {m.long: run.metrics.get(m.key) for m in shown}
        cells = ", ".join(f"{name} {v * 100:.2f}%" for name, v in values.items() if v is not None)
        return (
            f"On the validation split ({run.dataset.splits.get('validation', 0):,} queries), after the last epoch "
            f"of training: {cells}. Not evaluated on a test split yet: run `distill evaluate TEACHER RUN` before "
            "pushing to add the comparison, with latency and size."
        )
    rows = [
        "| model | " + " | ".join(m.long for m in shown) + " | latency ms | size MB |",
        "|---|" + "---|" * len(shown) + "---|---|",
    ]

    def pct(v):
        return "—" if v is None else f"{v * 100:.2f}"

    for m in evals["models"]:
        label = f"**{name}** (this model)" if m["path"] == evals["result"]["path"] else public_name(m["model"])
        cells = " | ".join(pct(m[q.key]) for q in shown)
        rows.append(f"| {label} | {cells} | {m['latency_ms_mean']:.2f} | {m['size_mb']:.1f} |")
    return (
        f"On the {evals['split']} split of {public_name(evals['dataset'])} ({evals['examples']:,} queries); "
        f"latency of one query on CPU with {evals['threads']} threads.\n\n" + "\n".join(rows)
    )


def card_eval_results(evals: dict | None, run: RunRecord | None, dataset: str, dataset_id: str) -> list:
    """The ``model-index`` entries: this model's results from ``eval_results.json``; before ``evaluate``, the
    validation metrics of its last epoch from ``run.json``, with the split named ``validation``."""
    from huggingface_hub import EvalResult

    if evals:
        me, split = evals["result"], evals["split"]
    elif run is not None and run.metrics:
        me, split = run.metrics, "validation"
    else:
        return []
    return [
        EvalResult(
            task_type="text-classification",
            dataset_type=dataset_id,
            dataset_name=dataset,
            dataset_split=split,
            metric_type=m.card_type,
            metric_name=m.long.capitalize(),
            metric_value=round(me[m.key], 4),
        )
        for m in QUALITY
        if m.card_type and me.get(m.key) is not None
    ]


CARD_HYPERPARAMETERS = (
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
)


def card_hyperparameters(run: RunRecord | None) -> dict:
    cfg = run.config if run else {}
    hyper = {k: cfg.get(k) for k in CARD_HYPERPARAMETERS if cfg.get(k) is not None}
    if not (run and run.teacher):
        hyper.pop("temperature", None)
    if run and run.student.layers_kept:
        hyper["layers kept (of the initial checkpoint)"] = run.student.layers_kept
    return hyper


def export_settings(run_dir: Path) -> dict:
    path = run_dir / "export.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def library_name(run_dir: Path, run: RunRecord | None) -> str:
    if (run_dir / "model.onnx").is_file():
        return "onnx"
    if run and run.student.pooling == "static":
        return "model2vec"
    return "sentence-transformers" if run and run.student.pooling == "mean" else "transformers"


def model_card(run_dir: Path, repo_id: str, runs_dir: Path) -> str:
    from huggingface_hub import ModelCard, ModelCardData

    run = RunRecord.read(run_dir)
    eval_file = run_dir / "eval_results.json"
    evals = json.loads(eval_file.read_text()) if eval_file.is_file() else None
    dataset = public_name((run and run.dataset.source) or (run and run.config.get("dataset")) or "an intent dataset")
    dataset_id = dataset.removeprefix("hub:").split(":")[0] if dataset.startswith("hub:") else Path(dataset).stem
    base = hub_origin(run.student.spec if run else None, runs_dir)
    teacher = public_name(run.teacher.spec) if run and run.teacher else None
    data = ModelCardData(
        language="en",
        library_name=library_name(run_dir, run),
        pipeline_tag="text-classification",
        tags=["text-classification", "intent-classification", "distillation" if teacher else "fine-tuned"],
        base_model=base,
        model_name=repo_id.split("/")[-1],
        eval_results=card_eval_results(evals, run, dataset, dataset_id) or None,
        datasets=[dataset_id] if dataset.startswith("hub:") else None,
    )
    teacher_hub = hub_origin(teacher, runs_dir, follow_runs=False)  # linked only if it is on the Hub itself
    card = ModelCard.from_template(
        data,
        template_str=CARD,
        model_name=repo_id.split("/")[-1],
        repo_id=repo_id,
        dataset=dataset,
        teacher=teacher and (f"[{teacher}](https://huggingface.co/{teacher_hub})" if teacher_hub else f"`{teacher}`"),
        base_model=base,
        results=results_table(evals, repo_id.split("/")[-1], run),
        hyperparameters=card_hyperparameters(run),
        example="how do i set an alarm for 7 am",
        pooling=run.student.pooling if run else "cls",
        onnx=(run_dir / "model.onnx").is_file(),
        quantized=export_settings(run_dir).get("quantize") == "int8",
        oos_threshold=run.oos_rule.threshold if run and run.oos_rule else None,
        oos_label=run.oos_rule.oos_label if run and run.oos_rule else None,
        oos_share=run.oos_rule.oos_share if run and run.oos_rule else None,
    )
    return str(card)


def check_repo_id(repo_id: str) -> None:
    """OWNER/NAME, by huggingface_hub's own rules (no ``--`` or ``..``, no leading or trailing ``-`` or ``.``)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not REPO_ID.match(repo_id):
        raise UsageError(f"--repo-id {repo_id!r}: expected OWNER/NAME")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise UsageError(f"--repo-id {repo_id!r}: {str(err).splitlines()[0]}") from None


def push(
    cfg: Config,
    model: str,
    repo_id: str,
    private: bool = False,
    commit_message: str | None = None,
    dry_run: bool = False,
) -> dict:
    """Publish a run folder to ``repo_id`` in one commit; ``dry_run`` shows what would go and touches nothing."""
    check_repo_id(repo_id)
    ref = resolve_model(model, cfg)
    if not ref.is_local:
        raise UsageError(f"push publishes a local run: '{model}' is not a run name or folder")
    run_dir = Path(ref.location)
    check_weights(run_dir)  # every weight file its kind needs, whole: a dry run says so too
    files = publishable_files(run_dir)
    if not any(f.suffix in (".safetensors", ".onnx") for f in files):
        raise UsageError(f"{run_dir} has no safetensors or ONNX weights to publish")
    card = model_card(run_dir, repo_id, cfg.runs_dir)
    listing = [{"path": f.relative_to(run_dir).as_posix(), "bytes": content_size(f)} for f in files]
    listing.append({"path": "README.md", "bytes": len(card.encode())})
    result = {"repo_id": repo_id, "files": listing, "card": card}
    if dry_run:
        return result
    message = commit_message or f"Upload {run_dir.name} with distill"
    return {**result, **upload(repo_id, run_dir, files, card, private, message)}


def upload(repo_id: str, run_dir: Path, files: list[Path], card: str, private: bool, commit_message: str) -> dict:
    """Create the repository if needed and upload ``files`` and the card in one commit."""
    from huggingface_hub import CommitOperationAdd, HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    token = get_token()
    if not token:
        raise UsageError("not logged in: run `hf auth login` or set HF_TOKEN")
    if offline_mode():
        raise DistillError("cannot push in offline mode (HF_HUB_OFFLINE=1); unset it to publish")
    api = HfApi(endpoint=endpoint(), token=token)
    ops = [
        CommitOperationAdd(path_in_repo=f.relative_to(run_dir).as_posix(), path_or_fileobj=file_content(f))
        for f in files
    ]
    ops.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card.encode()))
    try:
        url = api.create_repo(repo_id, private=private or None, exist_ok=True, repo_type="model")
        commit = api.create_commit(repo_id, ops, commit_message=commit_message)
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        why = {
            401: "authentication failed: the token is invalid or expired",
            403: f"permission denied: the token cannot write to {repo_id}",
            404: f"not found: {repo_id} (check the owner name)",
        }.get(status, f"the Hub answered {status}")
        raise DistillError(f"push to {repo_id} failed ({status}): {why}".replace(token, "***")) from None
    except Exception as err:
        # connection refused, DNS failure, timeouts: OSError, or httpx's own errors (which are not OSError)
        if isinstance(err, OSError) or type(err).__module__.startswith(("httpx", "httpcore")):
            where = redact_url(endpoint())
            raise DistillError(f"push to {repo_id} failed: cannot reach {where} ({type(err).__name__})") from None
        raise
    commit_url = getattr(commit, "commit_url", None)
    return {"url": redact_url(str(url)), "commit": redact_url(commit_url) if commit_url else None}


def render_dry_run(result: dict) -> None:
    """The files that would go, and the card, for people (on stderr)."""
    from rich.table import Table

    from distill_cli.ui import console

    table = Table(title=f"would upload to {result['repo_id']}", title_justify="left")
    table.add_column("path")
    table.add_column("bytes", justify="right")
    for f in result["files"]:
        table.add_row(f["path"], f"{f['bytes']:,}")
    console.print(table)
    console.print(result["card"], markup=False, soft_wrap=True)
