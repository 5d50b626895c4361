"""Rows beyond the labelled set, for the teacher to label: a transfer set and augmented queries.

A transfer set is unlabelled text (one query a line in ``.txt``, or a text column of ``.csv``, ``.json``,
``.jsonl`` or ``.parquet``; labels there are ignored). ``--augment N`` makes N variants of every labelled
training query with resource-free edits (Tang et al. 2019): mask a word, drop a word, swap two neighbours,
keep an n-gram window. Both join the training set with the label ``UNLABELLED``: the loss gives them the
distillation term alone (``training/loss.py``), from the teacher's logits, which are cached like the rest.

Nothing of the evaluation may leak in: a row equal to a validation or test query (case and whitespace
aside) is dropped and counted, as are duplicates and rows equal to a labelled query.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path

from distill_cli.config import Config
from distill_cli.data.sources import EXTENSIONS, TEXT_COLUMNS, read_source, sha
from distill_cli.errors import UsageError

UNLABELLED = -100  # the label of a row the teacher alone labels (cross-entropy's ignore index)
EDITS = ("mask", "drop", "swap", "ngram")


@dataclass
class ExtraRows:
    """The texts to add, and how many rows came from where (``run.json`` records ``counts``)."""

    transfer: list[str] = field(default_factory=list)
    augmented: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def texts(self) -> list[str]:
        return self.transfer + self.augmented


def normalised(text: str) -> str:
    """A query as compared for leaks and duplicates: lower case, single spaces."""
    return " ".join(text.lower().split())


def digest(text: str) -> bytes:
    """The 16-byte key a query is compared by (``normalised``) for leaks and duplicates."""
    return hashlib.blake2b(normalised(text).encode(), digest_size=16).digest()


def check_transfer_file(spec: str | None, flag: str = "--transfer-set") -> None:
    """Before any compute: the file exists and has a supported extension."""
    if spec is None:
        return
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"{flag} {spec}: no such file")
    if path.suffix.lower() not in (".txt", *EXTENSIONS):
        raise UsageError(f"{flag} {spec}: expected .txt (one query a line) or {', '.join(EXTENSIONS)}")


def read_transfer_set(spec: str, text_column: str | None, flag: str = "--transfer-set") -> list[str]:
    """The queries of a text file (a transfer set, or the texts ``export --trim-keep`` keeps the tokens of);
    one line naming the file when it is missing, holds none, or has no text column. A ``.txt`` file is read
    a line at a time: what is held is the queries, not the file's bytes and a decoded copy besides."""
    check_transfer_file(spec, flag)
    path = Path(spec)
    if path.suffix.lower() == ".txt":
        texts = list(text_lines(path, flag))
    else:
        table = read_source(str(path)).splits.get("train", {})
        column = text_column if text_column in table else next((c for c in TEXT_COLUMNS if c in table), None)
        if column is None:
            raise UsageError(
                f"{flag} {path}: no text column among {', '.join(table)}; name it with --text-column"
            )
        texts = [t.strip() for t in table[column] if isinstance(t, str) and t.strip()]
    if not texts:
        raise UsageError(f"{flag} {path} holds no queries")
    return texts


def text_lines(path: Path, flag: str):
    """The non-empty lines of a UTF-8 text file (a byte-order mark allowed), stripped; binary content or a
    line that is not UTF-8 is one error naming the file and the line."""
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            if b"\x00" in raw:
                raise UsageError(f"{flag} {path} is not a text file (binary content, line {number})")
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8").strip()
            except UnicodeDecodeError:
                raise UsageError(f"{flag} {path} is not a text file (line {number} is not UTF-8)") from None
            if line:
                yield line


def augment(text: str, n: int, seed: int, mask_token: str) -> list[str]:
    """Up to ``n`` distinct variants of ``text``, each differing from it; the same for the same seed (the
    generator is seeded by the seed and the text, so a row's variants do not depend on the others)."""
    words = text.split()
    rng = random.Random(sha(f"{seed}\n{text}"))
    variants: list[str] = []
    seen = {normalised(text)}
    for _ in range(n * 10):  # short queries have few distinct variants: stop trying after a while
        if len(variants) == n:
            break
        candidate = " ".join(edit(words, rng.choice(EDITS), rng, mask_token))
        if candidate and normalised(candidate) not in seen:
            seen.add(normalised(candidate))
            variants.append(candidate)
    return variants


def edit(words: list[str], how: str, rng: random.Random, mask_token: str) -> list[str]:
    """One resource-free edit of a query's words."""
    out = list(words)
    if how == "mask":
        out[rng.randrange(len(out))] = mask_token
    elif how == "drop" and len(out) > 1:
        del out[rng.randrange(len(out))]
    elif how == "swap" and len(out) > 1:
        i = rng.randrange(len(out) - 1)
        out[i], out[i + 1] = out[i + 1], out[i]
    elif how == "ngram" and len(out) > 2:
        size = rng.randint(max(1, len(out) // 2), len(out) - 1)
        start = rng.randrange(len(out) - size + 1)
        out = out[start : start + size]
    return out


def extra_rows(cfg: Config, labelled: list[str], held_out: list[str], mask_token: str) -> ExtraRows:
    """The transfer and augmented rows for ``cfg``, never equal to a ``held_out`` (validation or test) query,
    a labelled query, or each other."""
    rows = ExtraRows()
    if not cfg.transfer_set and not cfg.augment:
        return rows
    # Digests, not texts: a set of 16-byte keys holds a million queries in tens of MB.
    evaluation = {digest(t) for t in held_out}
    seen = {digest(t) for t in labelled}
    dropped = {"leak": 0, "duplicate": 0}

    def keep(texts: list[str]) -> list[str]:
        kept = []
        for text in texts:
            key = digest(text)
            if key in evaluation:
                dropped["leak"] += 1
            elif key in seen:
                dropped["duplicate"] += 1
            else:
                seen.add(key)
                kept.append(text)
        return kept

    if cfg.transfer_set:
        found = read_transfer_set(cfg.transfer_set, cfg.text_column)
        rows.transfer = keep(found)
        rows.counts["transfer_read"] = len(found)
    if cfg.augment:
        rows.augmented = keep([v for text in labelled for v in augment(text, cfg.augment, cfg.seed, mask_token)])
    rows.counts.update(
        labelled=len(labelled),
        transfer=len(rows.transfer),
        augmented=len(rows.augmented),
        dropped_as_evaluation_queries=dropped["leak"],
        dropped_as_duplicates=dropped["duplicate"],
    )
    return rows


def with_extra_rows(train, rows: ExtraRows, tokenizer, max_length: int):
    """The training split with ``rows`` appended (labelled ``UNLABELLED``), tokenized like the rest."""
    from datasets import Dataset, Value, concatenate_datasets

    from distill_cli.data.prepared import tokenize

    if not rows.texts:
        return train
    train = train.cast_column("label", Value("int64"))  # a ClassLabel cannot hold the unlabelled mark
    extra = Dataset.from_dict({"text": rows.texts, "label": [UNLABELLED] * len(rows.texts)}, features=None)
    extra = tokenize(extra.cast_column("label", Value("int64")), tokenizer, max_length)
    return concatenate_datasets([train, extra.cast(train.features)])


def describe(counts: dict[str, int]) -> str:
    """One line for the console: what was added and what was dropped."""
    parts = []
    if "transfer_read" in counts:
        parts.append(f"transfer set: {counts['transfer']:,} of {counts['transfer_read']:,} queries kept")
    if counts.get("augmented"):
        parts.append(f"{counts['augmented']:,} augmented queries")
    parts.append(
        f"dropped {counts['dropped_as_evaluation_queries']:,} equal to a validation or test query and "
        f"{counts['dropped_as_duplicates']:,} duplicates"
    )
    return "; ".join(parts)
