"""Datasets: read a source, name its labels, split it, tokenize it, and cache the result on disk.

A source is a folder written by ``prepare`` (it has ``manifest.json``), a built-in name, local files
(``.json``, ``.jsonl``, ``.csv``, ``.parquet``; one file, or a folder of per-split files; the raw
CLINC150 json with ``train``/``val``/``test``/``oos_*`` lists), or a Hub name ``name[:config]``.
Whatever the source, the prepared dataset has the splits ``train``, ``validation`` (carved from train
when missing) and ``test`` (when given), a ``text`` column and a ``label`` ``ClassLabel``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill_cli import __version__
from distill_cli.config import Config
from distill_cli.errors import DistillError, UsageError
from distill_cli.files import move_into_place

if TYPE_CHECKING:
    from datasets import DatasetDict

MANIFEST = "manifest.json"
BUILTIN = {"demo-intents": "demo_intents.json"}
EXTENSIONS = (".json", ".jsonl", ".csv", ".parquet")
SPLIT_NAMES = {
    "train": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "test": "test",
}
TEXT_COLUMNS = ("text", "query", "utterance", "sentence")
LABEL_COLUMNS = ("label", "labels", "intent", "category")

Table = dict[str, list]  # column name -> values


@dataclass
class Source:
    """Raw splits as read from a source, before labels are named or anything is tokenized."""

    description: str
    fingerprint: str
    splits: dict[str, Table]
    label_names: list[str] | None = None  # from a ClassLabel on the Hub, to decode integer labels


@dataclass
class Prepared:
    path: Path
    manifest: dict[str, Any]
    datasets: DatasetDict
    reused: bool

    @property
    def label_names(self) -> list[str]:
        return self.manifest["labels"]


# ---------------------------------------------------------------------------------------------- reading


def _sha(*chunks: bytes | str) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(c.encode() if isinstance(c, str) else c)
    return h.hexdigest()


def read_source(spec: str) -> Source:
    """Read any source ``prepare`` accepts into raw splits."""
    path = Path(spec)
    if spec in BUILTIN and not path.exists():
        ref = resources.files("distill_cli") / "data" / BUILTIN[spec]
        with resources.as_file(ref) as builtin:
            src = _read_file(builtin)
        return Source(f"builtin:{spec}", src.fingerprint, src.splits)
    if path.is_dir():
        return _read_folder(path)
    if path.is_file():
        return _read_file(path)
    if path.suffix in EXTENSIONS or "/" in spec and len(spec.split("/")) > 2 or spec.startswith("."):
        raise UsageError(f"dataset not found: {spec}")
    return _read_hub(spec)


def _read_folder(path: Path) -> Source:
    files = sorted(p for p in path.iterdir() if p.suffix in EXTENSIONS and p.stem.lower() in SPLIT_NAMES)
    if not any(SPLIT_NAMES[p.stem.lower()] == "train" for p in files):
        raise UsageError(f"dataset folder {path} has no train file (expected train{{{','.join(EXTENSIONS)}}})")
    splits: dict[str, Table] = {}
    prints = []
    for f in files:
        split = SPLIT_NAMES[f.stem.lower()]
        if split in splits:
            raise UsageError(f"dataset folder {path} has two files for the {split} split")
        src = _read_file(f)
        if set(src.splits) != {"train"}:
            raise UsageError(f"{f} holds several splits; a folder needs one file per split")
        splits[split] = src.splits["train"]
        prints.append(f.name + src.fingerprint)
    return Source(str(path), _sha(*prints), splits)


def _read_file(path: Path) -> Source:
    raw = path.read_bytes()
    if not raw.strip():
        raise UsageError(f"dataset file is empty: {path}")
    suffix = path.suffix.lower()
    if suffix not in EXTENSIONS:
        raise UsageError(f"unsupported dataset file {path}: expected one of {', '.join(EXTENSIONS)}")
    reader = {".json": _parse_json, ".jsonl": _parse_jsonl, ".csv": _parse_csv, ".parquet": _parse_parquet}
    splits = reader[suffix](path, raw)
    for name, table in splits.items():
        if not table or not next(iter(table.values()), None):
            raise UsageError(f"dataset file {path} has no rows in its {name} split")
    return Source(str(path), _sha(raw), splits)


def _rows_to_table(rows: list, path: Path) -> Table:
    if not rows or not all(isinstance(r, dict) for r in rows):
        raise UsageError(f"{path}: expected a list of records (objects with text and label fields)")
    columns: Table = {k: [] for k in rows[0]}
    for i, row in enumerate(rows):
        if set(row) != set(columns):
            raise UsageError(f"{path}: record {i + 1} has fields {sorted(row)}, the first has {sorted(columns)}")
        for k, v in row.items():
            columns[k].append(v)
    return columns


def _is_clinc(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and isinstance(data.get("train"), list)
        and all(isinstance(v, list) and all(isinstance(r, list) and len(r) == 2 for r in v) for v in data.values())
    )


def _parse_json(path: Path, raw: bytes) -> dict[str, Table]:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        if raw.lstrip().startswith(b"{") and b"\n" in raw.strip():
            try:
                return _parse_jsonl(path, raw)
            except UsageError:
                pass
        raise UsageError(f"{path} is not valid JSON: {err}") from None
    if _is_clinc(data):
        # Raw CLINC150: train/val/test (and oos_train/oos_val/oos_test) lists of [text, intent].
        splits: dict[str, Table] = defaultdict(lambda: {"text": [], "label": []})
        for key, pairs in data.items():
            split = SPLIT_NAMES.get(key.removeprefix("oos_"))
            if split is None:
                raise UsageError(f"{path}: unknown CLINC150 split '{key}'")
            for text, label in pairs:
                splits[split]["text"].append(text)
                splits[split]["label"].append(label)
        return dict(splits)
    if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        lengths = {len(v) for v in data.values()}
        if len(lengths) != 1:
            raise UsageError(f"{path}: columns have different lengths {sorted(lengths)}")
        return {"train": data}
    if isinstance(data, list):
        return {"train": _rows_to_table(data, path)}
    raise UsageError(f"{path}: expected records, columns or the CLINC150 layout, got {type(data).__name__}")


def _parse_jsonl(path: Path, raw: bytes) -> dict[str, Table]:
    rows = []
    for n, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise UsageError(f"{path} is not valid JSON lines: line {n}: {err.msg}") from None
    return {"train": _rows_to_table(rows, path)}


def _parse_csv(path: Path, raw: bytes) -> dict[str, Table]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not a UTF-8 CSV file") from None
    if "\x00" in text:
        raise UsageError(f"{path} is not a CSV file (binary content)")
    rows = list(csv.DictReader(text.splitlines()))
    if not rows:
        raise UsageError(f"{path} has a header but no rows")
    return {"train": _rows_to_table(rows, path)}


def _parse_parquet(path: Path, raw: bytes) -> dict[str, Table]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(raw))
    except (pa.ArrowInvalid, OSError) as err:
        raise UsageError(f"{path} is not a Parquet file: {err}") from None
    return {"train": table.to_pydict()}


def _read_hub(spec: str) -> Source:
    from distill_cli.hub import hub_unreachable_reason

    name, _, config = spec.partition(":")
    reason = hub_unreachable_reason()
    if reason:
        raise DistillError(
            f"cannot load dataset '{spec}' from the Hugging Face Hub: {reason}; "
            "pass local files instead (e.g. --dataset data.json)"
        )
    import datasets

    try:
        dsd = datasets.load_dataset(name, config or None)
    except FileNotFoundError as err:
        raise UsageError(f"dataset '{spec}' not found locally or on the Hub: {err}") from None
    except ConnectionError as err:
        raise DistillError(f"cannot load dataset '{spec}' from the Hub: {err}") from None
    splits, names = {}, None
    for split, ds in dsd.items():
        splits[SPLIT_NAMES.get(split, split)] = ds.to_dict()
        for col, feature in ds.features.items():
            if isinstance(feature, datasets.ClassLabel) and col in LABEL_COLUMNS:
                names = feature.names
    return Source(f"hub:{spec}", _sha("hub", spec), splits, names)


# -------------------------------------------------------------------------------------------- preparing


def pick_column(table: Table, wanted: str | None, candidates: tuple[str, ...], what: str, where: str) -> str:
    if wanted:
        if wanted not in table:
            raise UsageError(f"{where}: no column '{wanted}' (columns: {', '.join(table)})")
        return wanted
    for name in candidates:
        if name in table:
            return name
    flag = "--text-column" if what == "text" else "--label-column"
    raise UsageError(f"{where}: no {what} column among {', '.join(table)}; name it with {flag}")


def normalise(source: Source, cfg: Config) -> tuple[dict[str, Table], str, str]:
    """Keep the text and label columns of every split, labels as strings."""
    first = source.splits.get("train")
    if first is None:
        raise UsageError(f"{source.description}: no train split (found {', '.join(source.splits)})")
    text_col = pick_column(first, cfg.text_column, TEXT_COLUMNS, "text", source.description)
    label_col = pick_column(first, cfg.label_column, LABEL_COLUMNS, "label", source.description)
    out = {}
    for split, table in source.splits.items():
        if split not in ("train", "validation", "test"):
            continue
        for col in (text_col, label_col):
            if col not in table:
                raise UsageError(f"{source.description}: the {split} split has no column '{col}'")
        texts, labels = table[text_col], table[label_col]
        if any(not isinstance(t, str) or not t.strip() for t in texts):
            raise UsageError(f"{source.description}: the {split} split has empty or non-text values in '{text_col}'")
        if source.label_names and all(isinstance(x, int) for x in labels):
            labels = [source.label_names[x] for x in labels]
        out[split] = {"text": list(texts), "label": [str(x) for x in labels]}
    classes = set(out["train"]["label"])
    if len(classes) < 2:
        raise UsageError(
            f"{source.description}: label column '{label_col}' has a single class ({next(iter(classes))!r}); "
            "a classifier needs at least 2"
        )
    return out, text_col, label_col


def check_labels(found: set[str], known: list[str], whose: str) -> None:
    """Exit 2 listing every label the model does not know."""
    unknown = sorted(found - set(known))
    if unknown:
        shown = ", ".join(unknown[:20]) + (f" and {len(unknown) - 20} more" if len(unknown) > 20 else "")
        raise UsageError(f"{len(unknown)} dataset label(s) unknown to {whose}: {shown}")


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
    return _sha(type(tokenizer).__name__, body)[:16]


def tokenize(dsd: DatasetDict, tokenizer, max_length: int) -> DatasetDict:
    """Batched tokenization without padding (batches are padded to their own longest query)."""
    return dsd.map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=max_length),
        batched=True,
        batch_size=1000,
    )


def content_hash(splits: dict[str, Table], label_names: list[str]) -> str:
    return _sha(json.dumps({"labels": label_names, "splits": splits}, sort_keys=True))[:16]


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
    settings = {
        "source": source.fingerprint,
        "text_column": cfg.text_column,
        "label_column": cfg.label_column,
        "validation_size": cfg.validation_size,
        "seed": cfg.seed,
        "labels": label_names,
        "tokenizer": tok_print,
        "max_length": cfg.max_length,
        "format": 1,
    }
    key = _sha(json.dumps(settings, sort_keys=True))[:16]
    path = output or cfg.cache_root() / "prepared" / key
    splits, text_col, label_col = normalise(source, cfg)  # bad data is reported before anything else
    found = {label for table in splits.values() for label in table["label"]}
    if label_names is not None:
        check_labels(found, label_names, f"the teacher {teacher_name}")
    names = list(label_names) if label_names is not None else sorted(found)
    existing = read_manifest(path)
    if existing is not None and existing.get("key") == key and not overwrite:
        return Prepared(path, existing, load_prepared(path)[1], reused=True)
    if path.exists() and not overwrite and (existing is not None or any(path.iterdir())):
        raise UsageError(f"{path} already holds other data; pass --overwrite or choose another --output")
    if "validation" not in splits:
        splits["train"], splits["validation"] = carve_validation(splits["train"], cfg.validation_size, cfg.seed)

    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    features = Features({"text": Value("string"), "label": ClassLabel(names=names)})
    index = {n: i for i, n in enumerate(names)}
    order = [s for s in ("train", "validation", "test") if s in splits]
    dsd = DatasetDict(
        {
            s: Dataset.from_dict(
                {"text": splits[s]["text"], "label": [index[x] for x in splits[s]["label"]]}, features=features
            )
            for s in order
        }
    )
    dsd = tokenize(dsd, tokenizer, cfg.max_length)
    manifest = {
        "key": key,
        "source": source.description,
        "source_fingerprint": source.fingerprint,
        "text_column": text_col,
        "label_column": label_col,
        "oos_label": cfg.oos_label if cfg.oos_label in names else None,
        "splits": {s: len(dsd[s]) for s in order},
        "labels": names,
        "tokenizer": tokenizer_name,
        "tokenizer_fingerprint": tok_print,
        "max_length": cfg.max_length,
        "seed": cfg.seed,
        "content_hash": content_hash({s: splits[s] for s in order}, names),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "distill_version": __version__,
    }
    save_atomically(dsd, manifest, path)
    return Prepared(path, manifest, dsd, reused=False)


def save_atomically(dsd: DatasetDict, manifest: dict, path: Path) -> None:
    """Write into a sibling temporary folder, then swap it in: a failure never leaves half a dataset."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{time.time_ns()}")
    try:
        dsd.save_to_disk(str(tmp))
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        move_into_place(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_manifest(path: Path) -> dict | None:
    try:
        return json.loads((path / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def load_prepared(path: Path) -> tuple[dict, DatasetDict]:
    from datasets import load_from_disk

    manifest = read_manifest(path)
    if manifest is None:
        raise UsageError(f"{path} is not a prepared dataset (no {MANIFEST})")
    return manifest, load_from_disk(str(path))


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
    if cfg.dataset and read_manifest(Path(cfg.dataset)) is not None:
        path = Path(cfg.dataset)
        manifest, dsd = load_prepared(path)
        if label_names is not None and label_names != manifest["labels"]:
            check_labels(set(manifest["labels"]), label_names, f"the teacher {teacher_name}")
            dsd = relabel(dsd, label_names)
            manifest = {**manifest, "labels": list(label_names)}
        if manifest["tokenizer_fingerprint"] != tokenizer_fingerprint(tokenizer):
            dsd = tokenize(dsd.select_columns(["text", "label"]), tokenizer, cfg.max_length)
        return Prepared(path, manifest, dsd, reused=True)
    return prepare(cfg, tokenizer, tokenizer_name, label_names, teacher_name)


def relabel(dsd: DatasetDict, names: list[str]) -> DatasetDict:
    """Re-index the ``label`` ClassLabel of every split to ``names`` (matched by name)."""
    from datasets import ClassLabel

    old = dsd["train"].features["label"].names
    index = {n: i for i, n in enumerate(names)}
    mapping = [index[n] for n in old]
    features = dsd["train"].features.copy()
    features["label"] = ClassLabel(names=list(names))
    return dsd.map(lambda b: {"label": [mapping[x] for x in b["label"]]}, batched=True, features=features)


def prepare_command(cfg: Config, output: Path | None, overwrite: bool) -> Prepared:
    """``distill prepare``: tokenize for the student; with a teacher, take the teacher's label ids."""
    from distill_cli import modeling

    student = modeling.resolve_model(cfg.student, cfg)
    tokenizer = modeling.load_tokenizer(student, cfg)
    labels = modeling.teacher_with_labels(cfg)[2] if cfg.teacher else None
    return prepare(cfg, tokenizer, student.location, labels, cfg.teacher, output, overwrite)
