"""Rows beyond the labelled set, for the teacher to label: a transfer set and augmented queries.

A transfer set is unlabelled text (one query a line in ``.txt``, or a text column of ``.csv``, ``.json``,
``.jsonl`` or ``.parquet``; labels there are ignored). ``--augment N`` makes N variants of every labelled
training query with resource-free edits (Tang et al. 2019): mask a word, drop a word, swap two neighbours,
keep an n-gram window. ``--splice N`` makes N spliced queries of every labelled one: its first words joined
to the last words of another query, often of another intent, which the teacher answers with a mixed or
lower belief. All of them join the training set with the label ``UNLABELLED``: the loss gives them the
distillation term alone (``training/loss.py``), from the teacher's logits, which are cached like the rest.

Nothing of the evaluation may leak in: a row equal to a validation or test query (case and whitespace
aside) is dropped and counted, as are duplicates and rows equal to a labelled query.
"""

from __future__ import annotations

import atexit
import hashlib
import random
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from distill_cli.config import Config
from distill_cli.data.sources import EXTENSIONS, TEXT_COLUMNS, read_source, sha
from distill_cli.errors import UsageError

UNLABELLED = -100  # the label of a row the teacher alone labels (cross-entropy's ignore index)
EDITS = ("mask", "drop", "swap", "ngram")


@dataclass
class ExtraRows:
    """The rows to add, kept on disk (``path``, an Arrow file with a ``text`` column, in a scratch folder of
    the cache that is removed when the process ends), and how many rows came from where (``run.json``
    records ``counts``). The transfer rows come first, then the augmented ones, then the spliced ones."""

    path: Path | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return sum(self.counts.get(kind, 0) for kind in ("transfer", "augmented", "spliced"))

    def texts(self) -> list[str]:
        """Every row, read back (for a look: training reads the file as a memory-mapped dataset)."""
        from datasets import Dataset

        return list(Dataset.from_file(str(self.path))["text"]) if self.count else []

    @property
    def transfer(self) -> list[str]:
        return self.texts()[: self.counts.get("transfer", 0)]

    @property
    def augmented(self) -> list[str]:
        start = self.counts.get("transfer", 0)
        return self.texts()[start : start + self.counts.get("augmented", 0)]

    @property
    def spliced(self) -> list[str]:
        return self.texts()[self.counts.get("transfer", 0) + self.counts.get("augmented", 0) :]


def normalised(text: str) -> str:
    """A query as compared for leaks and duplicates: lower case, single spaces."""
    return " ".join(text.lower().split())


def digest(text: str) -> bytes:
    """The 16-byte key a query is compared by (``normalised``) for leaks and duplicates."""
    return hashlib.blake2b(normalised(text).encode(), digest_size=16).digest()


class Novelty:
    """Which added rows are new: none equal to a ``held_out`` (validation or test) query, a ``labelled`` one, or
    one kept before. Memory holds one 16-byte digest a query (tens of MB for a million), never the texts."""

    def __init__(self, held_out: list[str], labelled: list[str]):
        self.evaluation = {digest(t) for t in held_out}
        self.seen = {digest(t) for t in labelled}

    def check(self, text: str) -> str | None:
        """None for a new query (kept from now on); else why not: "leak" or "duplicate"."""
        key = digest(text)
        if key in self.evaluation:
            return "leak"
        if key in self.seen:
            return "duplicate"
        self.seen.add(key)
        return None


def check_transfer_file(spec: str | None, flag: str = "--transfer-set", text_lines: bool = True) -> None:
    """Before any compute: the file exists and has a supported extension (a table's, or ``.txt`` where
    ``text_lines``)."""
    if spec is None:
        return
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"{flag} {spec}: no such file")
    if path.suffix.lower() not in ((".txt",) if text_lines else ()) + EXTENSIONS:
        lines = ".txt (one query a line) or " if text_lines else ""
        raise UsageError(f"{flag} {spec}: expected {lines}{', '.join(EXTENSIONS)}")


def text_column_of(table: dict, text_column: str | None, flag: str, path) -> str:
    """The table's text column: the one named, else the first of ``TEXT_COLUMNS`` it has; one line if none."""
    column = text_column if text_column in table else next((c for c in TEXT_COLUMNS if c in table), None)
    if column is None:
        raise UsageError(f"{flag} {path}: no text column among {', '.join(table)}; name it with --text-column")
    return column


def read_transfer_set(spec: str, text_column: str | None, flag: str = "--transfer-set") -> list[str]:
    """The queries of a text file (the texts ``export --trim-keep`` keeps the tokens of) as a list; one line
    naming the file when it is missing, holds none, or has no text column."""
    texts = list(transfer_texts(spec, text_column, flag))
    if not texts:
        raise UsageError(f"{flag} {spec} holds no queries")
    return texts


def transfer_texts(spec: str, text_column: str | None, flag: str = "--transfer-set") -> Iterator[str]:
    """The queries of a transfer file, one at a time. A ``.txt`` file is read a line at a time, so what is
    held is never the file; a table (``.csv``, ``.json``, ``.parquet``) is read whole by its reader."""
    check_transfer_file(spec, flag)
    path = Path(spec)
    if path.suffix.lower() == ".txt":
        yield from text_lines(path, flag)
        return
    table = read_source(str(path)).splits.get("train", {})
    column = text_column_of(table, text_column, flag, path)
    yield from (t.strip() for t in table[column] if isinstance(t, str) and t.strip())


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


def splice(texts: list[str], n: int, seed: int) -> Iterator[str]:
    """``n`` spliced queries for every query of ``texts``: at least its first word and at most all but its
    last, then the end of another query drawn at random. The same for the same seed and texts (each query's
    generator is seeded by the seed and the query)."""
    if len(texts) < 2:
        return
    for i, text in enumerate(texts):
        words, rng = text.split(), random.Random(sha(f"{seed}\nsplice\n{text}"))
        for _ in range(n):
            j = rng.randrange(len(texts) - 1)
            other = texts[j + (j >= i)].split()  # any query but this one
            head = words[: rng.randint(1, max(1, len(words) - 1))]
            yield " ".join(head + other[rng.randint(1, max(1, len(other) - 1)) :])


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
    """The transfer, augmented and spliced rows for ``cfg``, never equal to a ``held_out`` (validation or test) query,
    a labelled query, or each other, written to disk as they are read: memory holds one 16-byte digest a
    row (tens of MB for a million), never the texts."""
    rows = ExtraRows()
    if not cfg.transfer_set and not cfg.augment and not cfg.splice:
        return rows
    novel = Novelty(held_out, labelled)
    counts = dict.fromkeys(("transfer_read", "transfer", "augmented", "spliced", "leak", "duplicate"), 0)

    def keep(text: str, kind: str) -> bool:
        problem = novel.check(text)
        counts[problem or kind] += 1
        return problem is None

    rows.path = scratch_folder(cfg) / "rows.arrow"
    with row_writer(rows.path) as write:
        if cfg.transfer_set:
            for text in transfer_texts(cfg.transfer_set, cfg.text_column):
                counts["transfer_read"] += 1
                if keep(text, "transfer"):
                    write(text)
            if not counts["transfer_read"]:
                raise UsageError(f"--transfer-set {cfg.transfer_set} holds no queries")
        for text in labelled if cfg.augment else ():
            for variant in augment(text, cfg.augment, cfg.seed, mask_token):
                if keep(variant, "augmented"):
                    write(variant)
        for text in splice(labelled, cfg.splice, cfg.seed):
            if keep(text, "spliced"):
                write(text)
    if cfg.transfer_set:
        rows.counts["transfer_read"] = counts["transfer_read"]
    rows.counts.update(
        labelled=len(labelled),
        transfer=counts["transfer"],
        augmented=counts["augmented"],
        **({"spliced": counts["spliced"]} if cfg.splice else {}),
        dropped_as_evaluation_queries=counts["leak"],
        dropped_as_duplicates=counts["duplicate"],
    )
    return rows


def scratch_folder(cfg: Config) -> Path:
    """A new folder of ours under the cache, removed when the process ends (the rows of one run)."""
    root = cfg.cache_root() / "scratch"
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="rows-", dir=root))
    atexit.register(shutil.rmtree, folder, True)
    return folder


@contextmanager
def row_writer(path: Path):
    """``write(text)`` appends a row to an Arrow file (``datasets``' own writer, in batches of 10,000)."""
    from datasets import Features, Value
    from datasets.arrow_writer import ArrowWriter

    writer = ArrowWriter(features=Features({"text": Value("string")}), path=str(path), writer_batch_size=10_000)
    try:
        yield lambda text: writer.write({"text": text})
    finally:
        writer.finalize()
        writer.close()


def with_extra_rows(train, rows: ExtraRows, tokenizer, max_length: int):
    """The training split with ``rows`` appended (labelled ``UNLABELLED``), tokenized like the rest. The added
    rows stay on disk, memory-mapped: tokenized in batches into a file beside theirs."""
    from datasets import Dataset, Value, concatenate_datasets

    if not rows.count:
        return train
    train = train.cast_column("label", Value("int64"))  # a ClassLabel cannot hold the unlabelled mark

    def encode(batch):
        encoded = tokenizer(batch["text"], truncation=True, max_length=max_length)
        return {**encoded, "label": [UNLABELLED] * len(batch["text"])}

    extra = Dataset.from_file(str(rows.path)).map(
        encode,
        batched=True,
        batch_size=1000,
        features=train.features,
        cache_file_name=str(rows.path.with_name("tokenized.arrow")),
        desc="tokenize the added rows",
    )
    return concatenate_datasets([train, extra.select_columns(list(train.column_names))])


def describe(counts: dict[str, int]) -> str:
    """One line for the console: what was added and what was dropped."""
    parts = []
    if "transfer_read" in counts:
        parts.append(f"transfer set: {counts['transfer']:,} of {counts['transfer_read']:,} queries kept")
    if counts.get("augmented"):
        parts.append(f"{counts['augmented']:,} augmented queries")
    if counts.get("spliced"):
        parts.append(f"{counts['spliced']:,} spliced queries")
    parts.append(
        f"dropped {counts['dropped_as_evaluation_queries']:,} equal to a validation or test query and "
        f"{counts['dropped_as_duplicates']:,} duplicates"
    )
    return "; ".join(parts)
