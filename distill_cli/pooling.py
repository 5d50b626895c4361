"""Pooling that matches the body: how a sentence becomes the one vector a classification head reads.

``AutoModelForSequenceClassification`` reads the first token ([CLS]) through a pooler. Sentence encoders
such as all-MiniLM-L6-v2 and all-mpnet-base-v2 were trained for the mean of their token vectors
instead (their ``1_Pooling/config.json`` says so), and their pooler was never trained. ``pooling: auto``
reads that file; ``MeanPoolingClassifier`` is the mean-pooled classifier.

A mean-pooled run is saved in the sentence-transformers layout that the checkpoint itself came in: the
body at the root (``config.json``, ``model.safetensors`` with the head as ``classifier.*``),
``modules.json``, ``1_Pooling/`` (mean) and ``2_Dense/`` (the head, identity activation), so that
``SentenceTransformer(folder).encode(texts)`` returns the logits with no remote code. Its
``config.json`` records ``distill_pooling: mean``, which every command of this tool reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

POOLING_KEY = "distill_pooling"  # in config.json of the models this tool writes


def checkpoint_pooling(model_config, model_file: Callable[[str], Path | None]) -> str:
    """The pooling a checkpoint was trained with: recorded by this tool, declared by sentence-transformers'
    ``modules.json`` + ``1_Pooling/config.json``, or else the architecture's own head ([CLS]).
    ``model_file(name)`` gives a file of the checkpoint (from its folder or the Hub), or None."""
    recorded = getattr(model_config, POOLING_KEY, None)
    if recorded:
        return recorded
    modules = model_file("modules.json")
    for module in json.loads(modules.read_text()) if modules is not None else []:
        if module.get("type", "").endswith("Pooling"):
            conf = model_file(f"{module['path']}/config.json")
            if conf is not None and json.loads(conf.read_text()).get("pooling_mode_mean_tokens"):
                return "mean"
    return "cls"


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The mean of the token vectors, padding excluded."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class MeanPoolingClassifier(nn.Module):
    """An encoder body, the mean of its token vectors, dropout and a linear head.

    The body is stored under its own ``base_model_prefix`` and the head as ``classifier``, so the state
    dict reads like ``BertForSequenceClassification``'s (without the unused pooler): ``AutoModel`` loads
    the body from a saved folder as it is.
    """

    def __init__(self, body, num_labels: int, dropout: float = 0.1):
        super().__init__()
        if getattr(body, "pooler", None) is not None:
            body.pooler = None  # [CLS] pooler: unused here, and never trained in a sentence encoder
        self.prefix = body.base_model_prefix
        setattr(self, self.prefix, body)
        self.config = body.config
        setattr(self.config, POOLING_KEY, "mean")
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.config.hidden_size, num_labels)

    @property
    def base_model(self):
        return getattr(self, self.prefix)

    def pool(self, input_ids=None, attention_mask=None, token_type_ids=None) -> torch.Tensor:
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        hidden = self.base_model(**{k: v for k, v in inputs.items() if v is not None}).last_hidden_state
        return mean_pool(hidden, attention_mask)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None):
        logits = self.classifier(self.dropout(self.pool(input_ids, attention_mask, token_type_ids)))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def save_pretrained(self, directory: str | Path, **_) -> None:
        """The body's config, the weights, and the sentence-transformers files (see the module doc)."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.config.architectures = [type(self).__name__]
        self.config.save_pretrained(directory)
        state = {k: v.contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
        write_sentence_transformers_files(directory, self.classifier, min(self.config.max_position_embeddings, 512))


def write_sentence_transformers_files(directory: Path, head: nn.Linear, max_length: int) -> None:
    from safetensors.torch import save_file

    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
    ]
    (directory / "modules.json").write_text(json.dumps(modules, indent=2))
    (directory / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_length}))
    (directory / "1_Pooling").mkdir(exist_ok=True)
    pooling = {"word_embedding_dimension": head.in_features, "pooling_mode_mean_tokens": True}
    (directory / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2))
    (directory / "2_Dense").mkdir(exist_ok=True)
    dense = {
        "in_features": head.in_features,
        "out_features": head.out_features,
        "bias": True,
        "activation_function": "torch.nn.modules.linear.Identity",
    }
    (directory / "2_Dense" / "config.json").write_text(json.dumps(dense, indent=2))
    weights = {"linear.weight": head.weight.detach().contiguous(), "linear.bias": head.bias.detach().contiguous()}
    save_file(weights, str(directory / "2_Dense" / "model.safetensors"))


def load_head(model: MeanPoolingClassifier, model_dir: Path) -> bool:
    """Put a saved head into ``model`` when the folder has one of the same shape; True when it did."""
    from safetensors import safe_open

    weights = model_dir / "model.safetensors"
    if not weights.is_file():
        return False
    with safe_open(str(weights), framework="pt") as f:
        if "classifier.weight" not in f.keys():
            return False
        weight, bias = f.get_tensor("classifier.weight"), f.get_tensor("classifier.bias")
    if weight.shape != model.classifier.weight.shape:
        return False
    with torch.no_grad():
        model.classifier.weight.copy_(weight)
        model.classifier.bias.copy_(bias)
    return True
