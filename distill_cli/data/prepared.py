"""Prepared datasets: name the labels of a source, split it, tokenize it, and cache the result on disk.

Whatever the source, the prepared dataset has the splits ``train``, ``validation`` (carved from train
when missing) and ``test`` (when given), a ``text`` column and a ``label`` ``ClassLabel``, and a
``manifest.json`` that says what it was made from.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections import Counter, defaultdict
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from distill_cli import __version__
from distill_cli.config import Config
from distill_cli.data.checks import announce, drop_duplicates, drop_leaks, find_problems, long_texts
from distill_cli.data.columns import OPEN_SET, check_labels, label_order, normalise, oos_setting
from distill_cli.data.manifest import FORMAT, MANIFEST, DamagedManifest, Manifest, looks_prepared
from distill_cli.data.sources import Source, Table, read_source, sha
from distill_cli.errors import UsageError
from distill_cli.files import atomic_folder, cache_lock, check_replaceable
from distill_cli.ui import warn

if TYPE_CHECKING:
    from datasets import DatasetDict



@dataclass
class Prepared:
    path: Path
    manifest: Manifest
    datasets: DatasetDict
    reused: bool

    @property
    def label_names(self) -> list[str]:
        """The dataset's labels in id order (open-set data: its out-of-scope label last)."""
        return self.manifest.labels

    @property
    def model_labels(self) -> list[str]:
        return self.manifest.model_labels


def carve_validation(train: Table, fraction: float, seed: int) -> tuple[Table, Table]:
    """A stratified split of train: each class gives the same fraction (at least one if it has two)."""
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(train["label"]):
        by_class[label].append(i)
    rng = random.Random(seed)
    held = set()
    for label in sorted(by_class):
        idx = by_class[label]
        rng.shuffle(idx)
        n = round(len(idx) * fraction)
        if n == 0 and len(idx) >= 2:
            n = 1
        held.update(idx[:n])
    keep = [i for i in range(len(train["label"])) if i not in held]
    val = sorted(held)
    return ({k: [v[i] for i in keep] for k, v in train.items()}, {k: [v[i] for i in val] for k, v in train.items()})


def tokenizer_fingerprint(tokenizer) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    body = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    return sha(type(tokenizer).__name__, body)[:16]


def tokenize(dsd: DatasetDict, tokenizer, max_length: int) -> DatasetDict:
    """Batched tokenization without padding (batches are padded to their own longest query)."""
    return dsd.map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=max_length),
        batched=True,
        batch_size=1000,
    )


def content_hash(splits: dict[str, Table], label_names: list[str]) -> str:
    return sha(json.dumps({"labels": label_names, "splits": splits}, sort_keys=True))[:16]


def cache_key(cfg: Config, source: Source, label_names: list[str] | None, tok_print: str) -> str:
    """What a prepared dataset depends on: the same key means the saved result can be reused."""
    settings = {
        "source": source.fingerprint,
        "text_column": cfg.text_column,
        "label_column": cfg.label_column,
        "validation_size": cfg.validation_size,
        "seed": cfg.seed,
        "labels": label_names,
        "tokenizer": tok_print,
        "max_length": cfg.max_length,
        "oos_label": cfg.oos_label,
        "drops": [cfg.drop_duplicates, cfg.drop_leaks],
        "min_examples": cfg.min_examples,
        "format": FORMAT,
    }
    return sha(json.dumps(settings, sort_keys=True))[:16]


def prepare(
    cfg: Config,
    tokenizer,
    tokenizer_name: str,
    label_names: list[str] | None = None,
    teacher_name: str | None = None,
    output: Path | None = None,
    overwrite: bool = False,
) -> Prepared:
    """Prepare ``cfg.dataset`` for ``tokenizer``; reuse the saved result when the inputs are the same.

    ``label_names`` (a teacher's ``id2label`` order) fixes the label ids; every dataset label must be in it.
    """
    if not cfg.dataset:
        raise UsageError("no dataset: pass --dataset or set 'dataset' in the config")
    source = read_source(cfg.dataset)
    tok_print = tokenizer_fingerprint(tokenizer)
    key = cache_key(cfg, source, label_names, tok_print)
    path = output or cfg.cache_root() / "prepared" / key
    splits, text_col, label_col = normalise(source, cfg)  # bad data is reported before anything else
    setting = oos_setting(splits, cfg.oos_label)
    found = {label for table in splits.values() for label in table["label"]}
    if label_names is not None:  # open-set data: the teacher has no out-of-scope output either
        outputs = found - {cfg.oos_label} if setting == OPEN_SET else found
        check_labels(outputs, label_names, f"the teacher {teacher_name}")
    names = label_order(splits, label_names, cfg.oos_label, setting)
    what = Manifest(
        key=key,
        source=source.description,
        source_fingerprint=source.fingerprint,
        text_column=text_col,
        label_column=label_col,
        oos_label=cfg.oos_label if cfg.oos_label in names else None,
        setting=setting,
        splits={},  # the counts and content_hash once split
        labels=names,
        tokenizer=tokenizer_name,
        tokenizer_fingerprint=tok_print,
        max_length=cfg.max_length,
        seed=cfg.seed,
        content_hash="",
        distill_version=__version__,
    )
    # Processes preparing one cache entry at once (DDP ranks, search workers) take turns: the later reuses it.
    with cache_lock(cfg.cache_root(), f"prepared-{key}") if output is None else nullcontext():
        prepared = reusable(path, key, named=output is not None, overwrite=overwrite)
        if prepared is not None:
            announce(prepared.manifest.checks, prepared.manifest.dropped, prepared.manifest.source, cfg.strict)
            return prepared
        return build(cfg, splits, what, tokenizer, path)


def build(cfg: Config, splits: dict[str, Table], what: Manifest, tokenizer, path: Path) -> Prepared:
    """Drop what the config asks, split (a validation split carved from train if there is none), check the
    data (``data/checks.py``: said now, and kept in the manifest), tokenize, and save in ``path`` with the
    manifest ``what`` completed. With ``strict``, a finding stops it before anything is written."""
    dropped = {}
    if cfg.drop_duplicates:
        splits, dropped["duplicates"] = drop_duplicates(splits)
    given_train_labels = list(splits["train"]["label"])
    validation = "given" if "validation" in splits else "carved"
    if validation == "carved":
        splits = with_validation(splits, cfg, what.source)
    if cfg.drop_leaks:
        splits, dropped["leaked queries"] = drop_leaks(splits)
    for split, table in splits.items():
        if not table["text"]:
            raise UsageError(f"{what.source}: dropping left the {split} split empty")
    checks = find_problems(splits, given_train_labels, cfg.min_examples)
    announce(checks, {}, what.source, cfg.strict)  # strict: nothing tokenized or written
    dsd = tokenize(to_datasets(splits, what.labels), tokenizer, cfg.max_length)
    cut = long_texts(dsd, tokenizer, cfg.max_length)
    announce([cut] if cut else [], dropped, what.source, cfg.strict)
    manifest = what.model_copy(
        update={
            "splits": {s: len(dsd[s]) for s in dsd},
            "content_hash": content_hash({s: splits[s] for s in dsd}, what.labels),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "checks": checks + ([cut] if cut else []),
            "validation": validation,
            "per_intent": per_intent(splits["train"]["label"], what.oos_label),
            "dropped": dropped,
        }
    )
    save_atomically(dsd, manifest, path)
    return Prepared(path, manifest, dsd, reused=False)


def per_intent(labels: list[str], oos_label: str | None) -> float:
    """The median number of training queries an in-scope label has."""
    counts = [n for label, n in Counter(labels).items() if label != oos_label]
    return float(statistics.median(counts)) if counts else 0.0


def reusable(path: Path, key: str, named: bool, overwrite: bool) -> Prepared | None:
    """The dataset already prepared in ``path`` from the same inputs (``key``), or None once ``path`` may be
    written. Our damaged cache entry is rebuilt with a warning; a folder the user ``named`` is verified or
    refused; anything in ``path`` that ``prepare`` did not write is never replaced."""
    try:
        existing = Manifest.read(path)
    except DamagedManifest as err:
        if named and not overwrite:
            raise
        if not named:
            warn(f"the cached dataset {path.name} is damaged ({err.problem}); rebuilding it")
        existing, overwrite = None, True  # a folder prepare wrote (it has a manifest): safe to replace
    if existing is not None and existing.key == key and not overwrite:
        if named:  # verified, or an error naming it
            return Prepared(path, existing, load_prepared(path)[1], reused=True)
        dsd, problem = existing.verify(path)
        if dsd is not None:
            return Prepared(path, existing, dsd, reused=True)
        warn(f"the cached dataset {path.name} is damaged ({problem}); rebuilding it")
        overwrite = True  # our own cache entry: safe to replace
    if path.exists() and (existing is not None or any(path.iterdir())):  # an empty folder is simply filled
        check_replaceable(
            path,
            overwrite,
            lambda folder: existing is not None or looks_prepared(folder),
            taken=f"{path} already holds other data; pass --overwrite or choose another --output",
            not_ours=f"{path} is not a dataset prepared by distill (no {MANIFEST}); refusing to replace it",
        )
    return None


def with_validation(splits: dict[str, Table], cfg: Config, where: str) -> dict[str, Table]:
    """``splits`` with a validation split carved from train (stratified), or one line when it is too small."""
    train, validation = carve_validation(splits["train"], cfg.validation_size, cfg.seed)
    if not validation["label"]:
        raise UsageError(
            f"{where}: too few examples to hold out a validation split (a class needs at least 2); add "
            "examples, or give a validation split of its own"
        )
    return {**splits, "train": train, "validation": validation}


def to_datasets(splits: dict[str, Table], names: list[str]) -> DatasetDict:
    """The splits as ``datasets``, in the order train, validation, test, with ``label`` a ``ClassLabel``."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    features = Features({"text": Value("string"), "label": ClassLabel(names=names)})
    index = {n: i for i, n in enumerate(names)}
    order = [s for s in ("train", "validation", "test") if s in splits]
    return DatasetDict(
        {
            s: Dataset.from_dict(
                {"text": splits[s]["text"], "label": [index[x] for x in splits[s]["label"]]}, features=features
            )
            for s in order
        }
    )


def save_atomically(dsd: DatasetDict, manifest: Manifest, path: Path) -> None:
    """Write into a sibling temporary folder, then swap it in: a failure never leaves half a dataset.
    The manifest records a checksum of every file, which ``Manifest.verify`` checks before use."""
    with atomic_folder(path) as tmp:
        dsd.save_to_disk(str(tmp))
        manifest.write(tmp)


def load_prepared(path: Path) -> tuple[Manifest, DatasetDict]:
    """A folder the user named: used only when it verifies, else one line naming it and how to rebuild it."""
    manifest = Manifest.read(path)
    if manifest is None:
        raise UsageError(f"{path} is not a prepared dataset (no {MANIFEST})")
    dsd, problem = manifest.verify(path)
    if problem:
        raise UsageError(
            f"prepared dataset {path} is damaged: {problem}; rebuild it with: distill prepare "
            f"--dataset {manifest.source_spec} --output {path} --overwrite"
        )
    return manifest, dsd


def load_for_training(
    cfg: Config,
    tokenizer,
    tokenizer_name: str,
    label_names: list[str] | None = None,
    teacher_name: str | None = None,
) -> Prepared:
    """The dataset a command trains or evaluates on: a prepared folder as it is, or any source prepared
    on the fly through the cache. Labels are re-indexed to ``label_names`` and text re-tokenized when
    the folder was prepared for another tokenizer."""
    manifest = Manifest.read(Path(cfg.dataset)) if cfg.dataset else None
    if manifest is not None:
        path = Path(cfg.dataset)
        if path.parent.resolve() == (cfg.cache_root() / "prepared").resolve():  # our cache entry, via a run
            dsd, problem = manifest.verify(path)
            if problem is not None:  # damaged: rebuilt from its source by prepare
                source_cfg = cfg.model_copy(update={"dataset": manifest.source_spec})
                return prepare(source_cfg, tokenizer, tokenizer_name, label_names, teacher_name)
        else:
            manifest, dsd = load_prepared(path)
        if label_names is not None and label_names != manifest.model_labels:
            order = output_order(manifest, label_names, f"the teacher {teacher_name}")
            dsd = relabel(dsd, order)
            manifest = manifest.model_copy(update={"labels": order})
        if manifest.tokenizer_fingerprint != tokenizer_fingerprint(tokenizer):
            dsd = tokenize(dsd.select_columns(["text", "label"]), tokenizer, cfg.max_length)
        announce(manifest.checks, manifest.dropped, manifest.source, cfg.strict)
        return Prepared(path, manifest, dsd, reused=True)
    return prepare(cfg, tokenizer, tokenizer_name, label_names, teacher_name)


def split_texts(
    cfg: Config, tokenizer, tokenizer_name: str, label_names: list[str]
) -> dict[str, tuple[list[str], list[int]]]:
    """Each split's texts and label ids in the order ``label_names`` gives (a model's outputs; the out-of-scope
    label of open-set data after them). From a prepared folder that verifies, its text and label columns are
    read as they are, relabelled in memory (nothing prepared or tokenized again); any other dataset goes through
    ``load_for_training``."""
    path = Path(cfg.dataset) if cfg.dataset else None
    manifest = Manifest.read(path) if path is not None else None
    dsd = manifest.verify(path)[0] if manifest is not None else None
    if dsd is None:
        dsd = load_for_training(cfg, tokenizer, tokenizer_name, label_names).datasets
    else:
        dsd = relabel(dsd, output_order(manifest, label_names, "the model"))
    return {n: (list(d["text"]), list(d["label"])) for n, d in dsd.items()}


def output_order(manifest: Manifest, label_names: list[str], whose: str) -> list[str]:
    """The data's labels in the order of a model's outputs ``label_names`` (one line naming the labels
    ``whose`` model does not know): the out-of-scope label of open-set data, which no model has, after them."""
    check_labels(set(manifest.model_labels), label_names, whose)
    return [*label_names, manifest.oos_label] if manifest.open_set else list(label_names)


def relabel(dsd: DatasetDict, names: list[str]) -> DatasetDict:
    """Re-index the ``label`` ClassLabel of every split to ``names`` (matched by name)."""
    from datasets import ClassLabel

    old = dsd["train"].features["label"].names
    index = {n: i for i, n in enumerate(names)}
    mapping = [index[n] for n in old]
    features = dsd["train"].features.copy()
    features["label"] = ClassLabel(names=list(names))
    return dsd.map(lambda b: {"label": [mapping[x] for x in b["label"]]}, batched=True, features=features)
