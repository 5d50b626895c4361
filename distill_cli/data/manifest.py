"""``manifest.json``, the typed record of a prepared dataset folder: what it was made from, its labels and
splits, and a checksum of every file. Written by ``prepare`` and read only through ``Manifest``; a folder is
used only when its manifest reads and its files match it (``verify``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, ValidationError

from distill_cli.config import describe_validation_error
from distill_cli.data.checks import DataCheck
from distill_cli.data.sources import sha_file
from distill_cli.errors import UsageError

if TYPE_CHECKING:
    from datasets import DatasetDict

MANIFEST = "manifest.json"
FEW_SHOT = 15  # training queries an intent (median) at or under which data is few-shot (the 5- and 10-shot
# sets of the suite are; its 50-an-intent sets and the embedded demo, 20 an intent, are not)
FORMAT = 4  # 2: the manifest holds file checksums; 3: and the data checks; 4: where validation came from


class DamagedManifest(UsageError):
    """A prepared folder whose ``manifest.json`` does not read as one: the folder is named, and the command
    that prepares it again."""

    def __init__(self, path: Path, problem: str, source: str | None):
        self.path, self.problem = path, problem
        again = f"distill prepare --dataset {source or '<your data>'} --output {path} --overwrite"
        super().__init__(f"prepared dataset {path}: {MANIFEST} is damaged ({problem}); prepare it again with: {again}")


class Manifest(BaseModel):
    """What a prepared folder holds and was made from (``manifest.json``)."""

    model_config = ConfigDict(extra="ignore")

    key: str  # the cache key of the inputs: the same key means the folder can be reused
    source: str  # the source as given (``builtin:demo-intents``, a path, ``hub:name:config``)
    source_fingerprint: str = ""
    text_column: str
    label_column: str
    oos_label: str | None = None
    setting: str = ""  # the out-of-scope data it holds (``columns.oos_setting``); "" before it was recorded
    splits: dict[str, int]
    labels: list[str]  # in label-id order
    tokenizer: str
    tokenizer_fingerprint: str
    max_length: int
    seed: int
    content_hash: str
    created: str = ""
    distill_version: str = ""
    files: dict[str, str] | None = None  # relative path -> sha256, of every file but the manifest
    validation: str = ""  # "given" by the source, or "carved" from train; "" before it was recorded
    per_intent: float | None = None  # training queries an intent (the median over the in-scope labels)
    checks: list[DataCheck] = []  # what prepare found wrong with the data (``data/checks.py``)
    dropped: dict[str, int] = {}  # rows dropped as asked (duplicates, leaked queries)

    @property
    def open_set(self) -> bool:
        """Out-of-scope queries in validation or test only: its label is last, and no model has it as an output."""
        return self.setting == "open-set"

    @property
    def few_shot(self) -> bool:
        """At most ``FEW_SHOT`` training queries an intent (the median): the few-shot recipe's data."""
        return self.per_intent is not None and self.per_intent <= FEW_SHOT

    def describe_shape(self) -> str:
        """One line: how many examples an intent the training split has, and where validation came from."""
        if self.per_intent is None:
            return ""
        shots = f"{self.per_intent:g} training queries an intent (median){', few-shot' if self.few_shot else ''}"
        where = {"given": "a validation split of its own", "carved": "validation carved from train"}
        return f"data: {shots}; {where.get(self.validation, 'validation of unknown origin')}"

    @property
    def model_labels(self) -> list[str]:
        """The labels a model trained on it has outputs for: all, but the out-of-scope label of open-set data."""
        return self.labels[:-1] if self.open_set else self.labels

    @property
    def source_spec(self) -> str:
        """What to pass as ``--dataset`` to prepare the same source again."""
        return self.source.removeprefix("builtin:")

    def write(self, folder: Path) -> None:
        """Into ``folder`` (a staging folder: ``prepare`` swaps it in whole), with the checksum of every file."""
        files = {
            p.relative_to(folder).as_posix(): sha_file(p)
            for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != MANIFEST
        }
        self.files = files
        (folder / MANIFEST).write_text(self.model_dump_json(indent=2))

    @classmethod
    def read(cls, folder: Path) -> Manifest | None:
        """The manifest of the prepared folder ``folder``; None when there is none (not a prepared folder).
        One that is not valid JSON, or lacks a key or has one of the wrong type, raises ``DamagedManifest``."""
        file = folder / MANIFEST
        if not file.is_file():
            return None
        try:
            data = json.loads(file.read_bytes())
        except (OSError, ValueError) as err:  # unreadable, not UTF-8, not JSON
            raise DamagedManifest(folder, f"not JSON: {type(err).__name__}", None) from None
        if not isinstance(data, dict):
            raise DamagedManifest(folder, f"a JSON {type(data).__name__}, not an object", None)
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            source = data.get("source") if isinstance(data.get("source"), str) else None
            raise DamagedManifest(folder, describe_validation_error(err, cls.model_fields), source) from None

    def verify(self, folder: Path) -> tuple[DatasetDict | None, str | None]:
        """The dataset in ``folder`` and None when it is what this manifest says (every file's checksum, the
        label order of every split, the row counts); else None and what is wrong."""
        from datasets import load_from_disk

        if not self.files:
            return None, "it has no checksums (prepared by an older distill)"
        for name, digest in self.files.items():
            file = folder / name
            if not file.is_file():
                return None, f"{name} is missing"
            if sha_file(file) != digest:
                return None, f"{name} does not match its checksum"
        try:
            # In memory: every later map (relabel, tokenize, row indices) stays there, never beside the data
            # files (a dataset folder is read, never written: it may be on read-only storage).
            dsd = load_from_disk(str(folder), keep_in_memory=True)
        except Exception as err:  # noqa: BLE001 - whatever datasets raises on a damaged folder, say what it is
            return None, f"it cannot be read ({type(err).__name__})"
        for split, ds in dsd.items():
            names = getattr(ds.features.get("label"), "names", None)
            if names != self.labels:
                return None, f"the {split} split's label order differs from {MANIFEST}'s"
            if len(ds) != self.splits.get(split):
                return None, f"the {split} split has {len(ds)} rows, {MANIFEST} says {self.splits.get(split)}"
        return dsd, None


def looks_prepared(folder: Path) -> bool:
    """A folder ``datasets`` saved with a manifest beside it: what ``prepare`` writes, even if damaged since."""
    return (folder / MANIFEST).is_file() and (folder / "dataset_dict.json").is_file()
