"""Trimming a WordPiece vocabulary to the tokens a task can meet.

Half of a small encoder's weights are its word embeddings (MiniLM-L6: 30,522 × 384), while an intent
dataset uses a few thousand tokens. Kept: the special tokens, every token of the tokenized training
split, and every single-character piece (``a`` and ``##a``), so that an unseen word still splits into
known pieces rather than becoming ``[UNK]``. The embedding rows are copied in the old order, so a text
made only of kept tokens gets exactly the same ids' vectors, and the same predictions.
"""

from __future__ import annotations

import copy
import json

import torch

from distill_cli.errors import UsageError


def kept_ids(tokenizer, train_texts: list[str], max_length: int) -> list[int]:
    vocab = tokenizer.get_vocab()
    keep = set(tokenizer.all_special_ids)
    for ids in tokenizer(train_texts, truncation=True, max_length=max_length)["input_ids"]:
        keep.update(ids)
    keep.update(i for token, i in vocab.items() if len(token) == 1 or (token.startswith("##") and len(token) == 3))
    return sorted(keep)


def trimmed_tokenizer(tokenizer, kept: list[int]):
    """The same tokenizer (class, normalizer, special tokens) over the kept tokens, renumbered in order."""
    from tokenizers import Tokenizer

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    if spec["model"]["type"] != "WordPiece":
        raise UsageError(f"--trim-vocab supports WordPiece tokenizers (BERT, MPNet), not {spec['model']['type']}")
    id_to_token = {i: t for t, i in spec["model"]["vocab"].items()}
    new_id = {old: new for new, old in enumerate(kept)}
    spec["model"]["vocab"] = {id_to_token[old]: new for old, new in new_id.items()}
    spec["added_tokens"] = [{**a, "id": new_id[a["id"]]} for a in spec["added_tokens"] if a["id"] in new_id]
    for special in (spec.get("post_processor") or {}).get("special_tokens", {}).values():
        special["ids"] = [new_id[i] for i in special["ids"]]
    for key in ("cls", "sep"):  # BertProcessing / RobertaProcessing: [token, id]
        if key in (spec.get("post_processor") or {}):
            spec["post_processor"][key][1] = new_id[spec["post_processor"][key][1]]
    if spec.get("padding"):
        spec["padding"]["pad_id"] = new_id[spec["padding"]["pad_id"]]
    trimmed = copy.deepcopy(tokenizer)
    trimmed._tokenizer = Tokenizer.from_str(json.dumps(spec))
    return trimmed


def trim_embeddings(model, kept: list[int]) -> None:
    """Keep the embedding rows of ``kept``, in place, and say so in the model's config."""
    body = model.base_model
    old = body.get_input_embeddings()
    new = torch.nn.Embedding(len(kept), old.embedding_dim, padding_idx=None)
    with torch.no_grad():
        new.weight.copy_(old.weight[torch.tensor(kept)])
    body.set_input_embeddings(new)
    config = model.config
    if getattr(config, "pad_token_id", None) is not None and config.pad_token_id in kept:
        config.pad_token_id = kept.index(config.pad_token_id)
    config.vocab_size = len(kept)


def lost_tokens(before, after, kept: list[int], texts: list[str], max_length: int) -> dict:
    """Of the tokens of ``texts`` (original tokenizer), the share no longer in the vocabulary (now spelled
    in smaller pieces), and the share of tokens that became ``[UNK]``."""
    old = before(texts, truncation=True, max_length=max_length, add_special_tokens=False)["input_ids"]
    new = after(texts, truncation=True, max_length=max_length, add_special_tokens=False)["input_ids"]
    total, keep = max(sum(len(ids) for ids in old), 1), set(kept)
    unknown = sum(ids.count(after.unk_token_id) for ids in new) - sum(ids.count(before.unk_token_id) for ids in old)
    outside = sum(i not in keep for ids in old for i in ids)
    return {"not_in_vocabulary": outside / total, "became_unknown": unknown / total}


def trim(model, tokenizer, train_texts: list[str], max_length: int):
    """The model (trimmed in place) and a trimmed tokenizer; ``kept`` says which old ids survive."""
    kept = kept_ids(tokenizer, train_texts, max_length)
    trimmed = trimmed_tokenizer(tokenizer, kept)
    trim_embeddings(model, kept)
    return model, trimmed, kept
