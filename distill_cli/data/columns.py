"""The text and label columns of a source's splits, read exactly or refused: one line naming the file, the
split, the row and the column (a query that is empty or not text, a label missing, a list as a label, one
number written two ways, a label that validation or test hold but train does not)."""

from __future__ import annotations

import math
from collections import defaultdict

from distill_cli.config import Config
from distill_cli.data.sources import LABEL_COLUMNS, TEXT_COLUMNS, Source, Table
from distill_cli.errors import UsageError


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
        check_texts(texts, f"{source.description}: the {split} split, column '{text_col}'")
        if source.label_names and all(isinstance(x, int) for x in labels):
            labels = [source.label_names[x] for x in labels]
        check_label_values(labels, f"{source.description}: the {split} split, column '{label_col}'")
        out[split] = {"text": list(texts), "label": [str(x) for x in labels]}
    check_label_sets(out, f"{source.description}: column '{label_col}'", cfg.oos_label)
    classes = set(out["train"]["label"])
    if len(classes) < 2:
        raise UsageError(
            f"{source.description}: label column '{label_col}' has a single class ({next(iter(classes))!r}); "
            "a classifier needs at least 2"
        )
    return out, text_col, label_col


def check_texts(texts: list, where: str) -> None:
    """Every query is text with something in it; the first that is not is named by its row."""
    for row, text in enumerate(texts, 1):
        if not isinstance(text, str):
            raise UsageError(f"{where}: row {row} is not text ({type(text).__name__} {text!r:.40})")
        if not text.strip():
            raise UsageError(f"{where}: row {row} is empty ({text!r}); fill it in or drop the row")


def check_label_values(labels: list, where: str) -> None:
    """One label per row, and none missing: an empty, null or NaN value would become a class named "",
    "None" or "nan", and a list (multi-label data) a class named after the list."""
    for row, value in enumerate(labels, 1):
        if isinstance(value, (list, tuple, dict, set)):
            raise UsageError(
                f"{where}: row {row} has a {type(value).__name__} as its label ({value!r:.60}); one label per row "
                "is expected (multi-label data is not supported)"
            )
        if value is None or (isinstance(value, float) and math.isnan(value)) or not str(value).strip():
            raise UsageError(f"{where}: row {row} has no label ({value!r}); fill it in or drop the row")


def check_label_sets(splits: dict[str, Table], where: str, oos_label: str | None = None) -> None:
    """Labels are read exactly: one number written two ways (1 and 1.0) is refused rather than made two
    classes, and a label that validation or test hold but train does not is one no model could learn; except
    the out-of-scope label (open-set data: a rule, not an output, answers it)."""
    spellings: dict[float, dict[str, str]] = defaultdict(dict)
    for split, table in splits.items():
        for row, label in enumerate(table["label"], 1):
            number = _as_number(label)
            if number is not None:
                spellings[number].setdefault(label, f"{split} row {row}")
    for found in spellings.values():
        if len(found) > 1:
            (a, at_a), (b, at_b) = list(found.items())[:2]
            raise UsageError(f"{where}: labels '{a}' ({at_a}) and '{b}' ({at_b}) are one number written two ways")
    known = set(splits["train"]["label"]) | {oos_label}
    for split in ("validation", "test"):
        for row, label in enumerate(splits.get(split, {}).get("label", []), 1):
            if label not in known:
                raise UsageError(f"{where}: label '{label}' ({split} row {row}) never occurs in train")


def _as_number(label: str) -> float | None:
    try:
        number = float(label)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def check_labels(found: set[str], known: list[str], whose: str) -> None:
    """Exit 2 listing every label the model does not know."""
    unknown = sorted(found - set(known))
    if unknown:
        shown = ", ".join(unknown[:20]) + (f" and {len(unknown) - 20} more" if len(unknown) > 20 else "")
        raise UsageError(f"{len(unknown)} dataset label(s) unknown to {whose}: {shown}")


# What out-of-scope data a dataset holds (``Manifest.setting``).
OOS_TRAINED = "out-of-scope trained"  # the out-of-scope label is in train: the model has it as an output
OPEN_SET = "open-set"  # only in validation and/or test: the model has no such output, a rule answers it
NO_OOS = "none"  # nowhere: the fallback (``oos_reject``) is the rule


def oos_setting(splits: dict[str, Table], oos_label: str) -> str:
    if oos_label in splits["train"]["label"]:
        return OOS_TRAINED
    if any(oos_label in table["label"] for table in splits.values()):
        return OPEN_SET
    return NO_OOS


def label_order(splits: dict[str, Table], label_names: list[str] | None, oos_label: str, setting: str) -> list[str]:
    """The dataset's labels in id order: a teacher's order when given, else sorted; open-set data puts its
    out-of-scope label last, after the labels a model has outputs for."""
    found = {label for table in splits.values() for label in table["label"]}
    names = list(label_names) if label_names is not None else sorted(found - {oos_label} if setting == OPEN_SET
                                                                             else found)  # fmt: skip
    if setting == OPEN_SET and oos_label not in names:
        names.append(oos_label)
    return names


def describe_setting(setting: str, oos_label: str) -> str:
    """One line: what the data holds out of scope, and what the model does about it."""
    if setting == OPEN_SET:
        return (
            f"out of scope: open-set: '{oos_label}' is in validation or test only, so the model gets no "
            f"'{oos_label}' output; a rule chosen on validation answers it"
        )
    if setting == NO_OOS:
        return (
            f"out of scope: no '{oos_label}' label anywhere: the fallback turns away oos_reject of the in-scope "
            f"queries as '{oos_label}'"
        )
    return f"out of scope: '{oos_label}' is in train: the model learns it as an intent, and a rule adds to it"
