"""The model card ``push`` uploads: what the model is, how it did (``eval_results.json``, else the last
epoch's validation metrics from ``run.json``), how it was trained and how to use it; and its ``model-index``
metadata. Datasets and models are named as the user knows them, never by a local path."""

from __future__ import annotations

from pathlib import Path

from distill_cli.config import Config
from distill_cli.errors import UsageError
from distill_cli.metrics import QUALITY
from distill_cli.modeling import BUILTIN_ALIASES, resolve_model
from distill_cli.onnx_model import ONNX_FILE
from distill_cli.records import EvalResults, ExportRecord, public_name
from distill_cli.runs import RunRecord
from distill_cli.static import encoder_spec

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
{% if oos %}
Out of scope: answer `{{ oos.label }}` when `confidence < {{ oos.threshold }}`, where the confidence is
{{ oos.confidence }}.
{%- if oos.reject is not none %} The training data has no out-of-scope queries, so this threshold is a
fallback: chosen on the validation split to turn away at most {{ oos.reject }} of in-scope queries like it, those
the model is least sure of.
{%- else %} The score and threshold were chosen on the validation split (the score by AUROC, the threshold
for an expected {{ oos.share }} share of out-of-scope queries).
{%- endif %} `distill predict` applies it.
{%- if oos.score != "max_softmax" %}

The score reads the intents' logits and the pooled features that the head reads ({{ oos.features }}),
with the statistics in `oos_features.safetensors` (fitted on the training split):

```python
import numpy as np
from safetensors.numpy import load_file

s = load_file(f"{folder}/oos_features.safetensors")  # folder: the model's, e.g. snapshot_download("{{ repo_id }}")
{% if onnx %}logits, features = session.run(["logits", "features"], {n: enc[n].astype(np.int64) for n in names})
{% else %}# logits: the model's outputs, features: {{ oos.features }} (numpy, one row a query)
{% endif %}{% if oos.output is not none %}logits = np.delete(logits, {{ oos.output }}, axis=-1)  # the intents' columns
{% endif %}energy = -np.logaddexp.reduce(logits.astype(np.float64), axis=-1)
z = features @ s["whitening"]
distance = ((z[:, None, :] - s["means"][None]) ** 2).sum(-1).min(-1)  # squared Mahalanobis, nearest intent
(e_mean, e_std), (d_mean, d_std) = s["standardize"]
oos_score = {{ oos.expression }}
out_of_scope = -oos_score < {{ oos.threshold }}
```
{%- endif %}
{%- endif %}

With `distill`: `distill predict MODEL "{{ example }}"`.
"""


SCORE_EXPRESSIONS = {
    "energy": "energy",
    "mahalanobis": "distance",
    "energy+mahalanobis": "(energy - e_mean) / e_std + (distance - d_mean) / d_std",
    # minus the cosine similarity to the k-th nearest training query
    "knn": '-np.sort(features / np.linalg.norm(features, axis=-1, keepdims=True) @ s["bank"].T.astype(np.float32), '
    'axis=-1)[:, -int(s["knn_k"][0])]',
}


def feature_source(pooling: str, onnx: bool) -> str:
    """Where a user of the card finds the pooled features of each kind of model."""
    if onnx:
        return "the graph's `features` output"
    if pooling == "static":
        return "`pipeline.model.encode(texts)`, the mean of the static vectors"
    if pooling == "mean":
        return "the mean-pooled vector that `2_Dense` reads"
    return "the input of the last linear layer, `classifier`"


def card_oos_rule(run: RunRecord | None, onnx: bool) -> dict | None:
    """What the card says of the run's out-of-scope rule, and what its code needs."""
    rule = run.oos_rule if run is not None else None
    if rule is None:
        return None
    labels = run.labels or []
    return {
        "label": rule.oos_label,
        "threshold": rule.threshold,
        "share": rule.oos_share,
        "reject": rule.reject_share,
        "score": rule.score,
        "confidence": "the top probability (`score` above)"
        if rule.score == "max_softmax"
        else f"minus the `{rule.score}` score (below)",
        "features": feature_source(run.student.pooling, onnx),
        "output": labels.index(rule.oos_label) if rule.oos_label in labels else None,
        "expression": SCORE_EXPRESSIONS.get(rule.score),
    }


def hub_origin(spec: str | None, cfg: Config, depth: int = 0, follow_runs: bool = True) -> str | None:
    """The Hub model ``spec`` is, or (``follow_runs``) that a run descends from through the runs it started
    from; found by the lookup every command uses (folder, run, the config's aliases, built-in alias, Hub id)."""
    if not spec or depth > 10:
        return None
    spec = encoder_spec(spec) or spec  # a static student descends from its encoder
    for _ in range(10):  # the config's aliases, followed without loading anything
        if spec not in cfg.aliases:
            break
        spec = cfg.aliases[spec]
    if spec in BUILTIN_ALIASES:  # installed locally or not, the same Hub model (and nothing is unpacked)
        return BUILTIN_ALIASES[spec][1]
    try:
        ref = resolve_model(spec, cfg)
    except UsageError:  # a folder that is gone, a name that is no model: nothing to link
        return None
    if ref.kind == "hub":  # a card links owner/name ids only: a bare name is more likely a local word
        return ref.location if "/" in ref.location else None
    record = RunRecord.read(Path(ref.location))
    return hub_origin(record.student.spec, cfg, depth + 1) if record is not None and follow_runs else None


def results_table(evals: EvalResults | None, name: str, run: RunRecord | None = None) -> str:
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

    median = all(m.latency_ms_median is not None for m in evals.models)  # results older than the median: the mean
    for m in evals.models:
        label = f"**{name}** (this model)" if m.path == evals.result.path else public_name(m.model)
        cells = " | ".join(pct(m.metric(q.key)) for q in shown)
        size = "—" if m.size_mb is None else f"{m.size_mb:.1f}"
        rows.append(f"| {label} | {cells} | {m.latency_ms_median if median else m.latency_ms_mean:.2f} | {size} |")
    return (
        f"On the {evals.split} split of {public_name(evals.dataset)} ({evals.examples:,} queries); "
        f"{'median' if median else 'mean'} latency of one query on CPU with {evals.threads} threads.\n\n"
        + "\n".join(rows)
    )


def card_eval_results(evals: EvalResults | None, run: RunRecord | None, dataset: str, dataset_id: str) -> list:
    """The ``model-index`` entries: this model's results from ``eval_results.json``; before ``evaluate``, the
    validation metrics of its last epoch from ``run.json``, with the split named ``validation``."""
    from huggingface_hub import EvalResult

    if evals:
        me, split = evals.result.model_dump(), evals.split
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
    cfg = run.config.model_dump(mode="json") if run else {}
    hyper = {k: cfg.get(k) for k in CARD_HYPERPARAMETERS if cfg.get(k) is not None}
    if not (run and run.teacher):
        hyper.pop("temperature", None)
    if run and run.student.layers_kept:
        hyper["layers kept (of the initial checkpoint)"] = run.student.layers_kept
    return hyper


def library_name(run_dir: Path, run: RunRecord | None) -> str:
    if (run_dir / ONNX_FILE).is_file():
        return "onnx"
    if run and run.student.pooling == "static":
        return "model2vec"
    return "sentence-transformers" if run and run.student.pooling == "mean" else "transformers"


def model_card(run_dir: Path, repo_id: str, cfg: Config) -> str:
    from huggingface_hub import ModelCard, ModelCardData

    run, evals, export = RunRecord.read(run_dir), EvalResults.read(run_dir), ExportRecord.read(run_dir)
    dataset = public_name((run and run.dataset.source) or (run and run.config.dataset) or "an intent dataset")
    dataset_id = dataset.removeprefix("hub:").split(":")[0] if dataset.startswith("hub:") else Path(dataset).stem
    base = hub_origin(run.student.spec if run else None, cfg)
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
    # The teacher is linked only if it is on the Hub itself.
    teacher_hub = hub_origin(run.teacher.spec if teacher else None, cfg, follow_runs=False)
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
        onnx=(run_dir / ONNX_FILE).is_file(),
        quantized=export is not None and export.quantize == "int8",
        oos=card_oos_rule(run, onnx=(run_dir / ONNX_FILE).is_file()),
    )
    return str(card)
