"""Reading a dataset source into raw splits, before labels are named or anything is tokenized.

A source is a built-in name, local files (``.json``, ``.jsonl``, ``.csv``, ``.parquet``; one file, or a
folder of per-split files; the raw CLINC150 json with ``train``/``val``/``test``/``oos_*`` lists), or a Hub
name ``name[:config]``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import defaultdict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from distill_cli.errors import DistillError, UsageError
from distill_cli.hub import hub_unreachable_reason, is_hub_id

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


def sha(*chunks: bytes | str) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(c.encode() if isinstance(c, str) else c)
    return h.hexdigest()


def sha_file(path: Path) -> str:
    """The sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
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
    check_source(spec)
    return _read_hub(spec)


def check_source(spec: str) -> None:
    """Without reading it: a dataset named as a local file or folder that is not there is one line (exit 2)."""
    path = Path(spec)
    if spec in BUILTIN or path.exists():
        return
    if path.suffix in EXTENSIONS or not is_hub_id(spec.partition(":")[0]):
        raise UsageError(f"dataset not found: {spec}")


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
    return Source(str(path), sha(*prints), splits)


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
    return Source(str(path), sha(raw), splits)


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
        if _looks_like_json_lines(raw):  # JSON lines in a .json file: its own errors name the right line
            return _parse_jsonl(path, raw)
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


def _looks_like_json_lines(raw: bytes) -> bool:
    """The first line is a JSON object on its own, and more lines follow."""
    first, _, rest = raw.strip().partition(b"\n")
    try:
        return isinstance(json.loads(first), dict) and bool(rest.strip())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


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
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, [])
    _check_unique(header, path)
    rows = []
    for row in reader:
        if not row:  # a blank line
            continue
        if len(row) != len(header):
            raise UsageError(
                f"{path}: line {reader.line_num} has {len(row)} fields, the header has {len(header)} "
                f"({', '.join(header)}); quote fields that hold commas"
            )
        rows.append(dict(zip(header, row)))
    if not rows:
        raise UsageError(f"{path} has a header but no rows")
    return {"train": _rows_to_table(rows, path)}


def _check_unique(columns: list[str], path: Path) -> None:
    """Two columns of one name: refuse rather than silently read one of them."""
    seen = set()
    for name in columns:
        if name in seen:
            raise UsageError(f"{path}: the header names column '{name}' twice; rename one")
        seen.add(name)


def _parse_parquet(path: Path, raw: bytes) -> dict[str, Table]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(raw))
    except (pa.ArrowInvalid, OSError) as err:
        raise UsageError(f"{path} is not a Parquet file: {err}") from None
    _check_unique(table.column_names, path)
    return {"train": table.to_pydict()}


def _read_hub(spec: str) -> Source:
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
    return Source(f"hub:{spec}", sha("hub", spec), splits, names)
