"""What ``prepare`` finds wrong with labelled data, said once when the data is prepared, kept in its
manifest and said again whenever a command reads it: texts that carry two labels, copies within a split,
validation or test queries that are also in train (a test split that leaks makes every figure of
``evaluate`` a lie), labels with very few training examples, and queries cut at ``max_length``.

Texts are compared as the transfer set compares them (``transfer.normalised``: case and spaces aside).
Nothing is dropped unless asked (``drop_duplicates``, ``drop_leaks``); ``strict`` makes each finding an
error (exit 2) for CI.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from typing import TYPE_CHECKING

from pydantic import BaseModel

from distill_cli.data.transfer import normalised
from distill_cli.errors import UsageError
from distill_cli.ui import info, warn

if TYPE_CHECKING:
    from distill_cli.data.sources import Table

SHOWN = 3  # examples a finding shows
EVALUATION = ("validation", "test")


class DataCheck(BaseModel):
    """One finding: what (``check``), how many rows, where, and up to ``SHOWN`` examples."""

    check: str  # conflicting_labels, duplicates, leakage, rare_labels, long_texts
    count: int
    by_split: dict[str, int] = {}
    examples: list[str] = []
    message: str


def many(n: int, one: str, more: str) -> str:
    return f"{n:,} {one if n == 1 else more}"


def short(text: str, width: int = 50) -> str:
    return repr(text if len(text) <= width else text[: width - 1] + "…")


def rows_kept(table: Table, keep: list[bool]) -> Table:
    """The rows of ``table`` whose ``keep`` is true, every column alike."""
    return {k: [v for v, kept in zip(values, keep) if kept] for k, values in table.items()}


def drop_duplicates(splits: dict[str, Table]) -> tuple[dict[str, Table], int]:
    """Each split without the repeated copies of a (text, label) pair: the first stays."""
    dropped, out = 0, {}
    for split, table in splits.items():
        seen, keep = set(), []
        for text, label in zip(table["text"], table["label"]):
            key = (normalised(text), label)
            keep.append(key not in seen)
            seen.add(key)
        dropped += keep.count(False)
        out[split] = rows_kept(table, keep)
    return out, dropped


def drop_leaks(splits: dict[str, Table]) -> tuple[dict[str, Table], int]:
    """Validation and test without the queries that also occur in train."""
    train = {normalised(t) for t in splits["train"]["text"]}
    dropped, out = 0, dict(splits)
    for split in EVALUATION:
        if split not in splits:
            continue
        keep = [normalised(t) not in train for t in splits[split]["text"]]
        dropped += keep.count(False)
        out[split] = rows_kept(splits[split], keep)
    return out, dropped


def conflicting_labels(splits: dict[str, Table]) -> DataCheck | None:
    labels: dict[str, set[str]] = defaultdict(set)
    for table in splits.values():
        for text, label in zip(table["text"], table["label"]):
            labels[normalised(text)].add(label)
    found = {text: names for text, names in labels.items() if len(names) > 1}
    if not found:
        return None
    examples = [f"{short(t)} ({', '.join(sorted(n))})" for t, n in list(found.items())[:SHOWN]]
    return DataCheck(
        check="conflicting_labels",
        count=len(found),
        examples=examples,
        message=f"{many(len(found), 'text carries', 'texts carry')} two or more labels: {'; '.join(examples)}; "
        "give each one label",
    )


def counted(check: str, by_split: dict[str, int], examples: list[str], say) -> DataCheck | None:
    """A finding counted by split, or None when no split has any; ``say(count, where, shown)`` words it."""
    if not by_split:
        return None
    count, where = sum(by_split.values()), ", ".join(f"{s} {n:,}" for s, n in by_split.items())
    shown = examples[:SHOWN]
    message = say(count, where, ", ".join(shown))
    return DataCheck(check=check, count=count, by_split=by_split, examples=shown, message=message)


def duplicates(splits: dict[str, Table]) -> DataCheck | None:
    by_split, examples = {}, []
    for split, table in splits.items():
        copies = Counter((normalised(t), label) for t, label in zip(table["text"], table["label"]))
        extra = {key: n - 1 for key, n in copies.items() if n > 1}
        if extra:
            by_split[split] = sum(extra.values())
            examples += [f"{short(t)} ×{n + 1} in {split}" for (t, _), n in extra.items()]
    return counted(
        "duplicates",
        by_split,
        examples,
        lambda n, where, shown: f"{many(n, 'repeated copy', 'repeated copies')} of labelled queries within a split "
        f"({where}): {shown}; --drop-duplicates drops them",
    )


def leakage(splits: dict[str, Table]) -> DataCheck | None:
    train = {normalised(t) for t in splits["train"]["text"]}
    by_split, shares, examples = {}, [], []
    for split in EVALUATION:
        texts = splits.get(split, {}).get("text", [])
        leaked = [t for t in texts if normalised(t) in train]
        if leaked:
            by_split[split] = len(leaked)
            shares.append(f"{split} {len(leaked):,} of {len(texts):,} ({len(leaked) / len(texts):.1%})")
            examples += [short(t) for t in leaked]
    return counted(
        "leakage",
        by_split,
        examples,
        lambda n, _where, shown: f"{many(n, 'validation or test query', 'validation or test queries')} also in "
        f"train ({'; '.join(shares)}): {shown}; their scores measure memory, not the model; --drop-leaks drops them",
    )


def rare_labels(train_labels: list[str], min_examples: int) -> DataCheck | None:
    counts = Counter(train_labels)
    rare = sorted((n, label) for label, n in counts.items() if n < min_examples)
    if not rare:
        return None
    (low, smallest), (high, largest) = min((n, x) for x, n in counts.items()), max((n, x) for x, n in counts.items())
    examples = [f"{label!r} ({n})" for n, label in rare[:SHOWN]]
    return DataCheck(
        check="rare_labels",
        count=len(rare),
        examples=examples,
        message=f"{many(len(rare), 'label has', 'labels have')} fewer than {min_examples} training examples "
        f"(smallest: {smallest!r} {low}, largest: {largest!r} {high}): {', '.join(examples)}",
    )


def long_texts(dsd, tokenizer, max_length: int) -> DataCheck | None:
    """Queries longer than ``max_length`` tokens, which the model reads cut there."""
    by_split, examples = {}, []
    for split, ds in dsd.items():
        reached = [i for i, ids in enumerate(ds["input_ids"]) if len(ids) >= max_length]
        texts = [ds[i]["text"] for i in reached]
        cut = [t for t, ids in zip(texts, tokenizer(texts)["input_ids"] if texts else []) if len(ids) > max_length]
        if cut:
            by_split[split] = len(cut)
            examples += [short(t) for t in cut]
    return counted(
        "long_texts",
        by_split,
        examples,
        lambda n, where, shown: f"{many(n, 'query is', 'queries are')} longer than max_length {max_length} tokens "
        f"and read cut there ({where}): {shown}",
    )


def find_problems(splits: dict[str, Table], given_train_labels: list[str], min_examples: int) -> list[DataCheck]:
    """Every finding on the splits as they will be saved (rare labels: on train as the source gave it, before
    a validation split is carved from it)."""
    found = (conflicting_labels(splits), duplicates(splits), leakage(splits), rare_labels(given_train_labels,
             min_examples))  # fmt: skip
    return [c for c in found if c is not None]


def announce(checks: list[DataCheck], dropped: dict[str, int], where: str, strict: bool) -> None:
    """One warning line a finding (or, ``strict``, an error naming the first), and what was dropped. Under
    torchrun only rank 0 says them (every rank reads the data)."""
    if strict and checks:
        raise UsageError(f"{where}: {checks[0].message} (strict: data checks are errors)")
    if os.environ.get("RANK", "0") != "0":
        return
    for check in checks:
        warn(f"{where}: {check.message}")
    if any(dropped.values()):
        info(f"{where}: dropped " + ", ".join(f"{n:,} {what}" for what, n in dropped.items() if n))
