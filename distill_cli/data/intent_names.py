"""Each intent's name as one more labelled training query (``intent_names``).

With a few queries an intent, a name such as ``card_declined`` or ``PinChange`` is a query of its intent
that the data does not hold, written the way its author thought of the intent: read as words ("card
declined", "pin change"), it joins the training split with its intent's label. Names that read as no words
(``LABEL_3``, ``12``, ``c7``) are skipped, and so is the out-of-scope label, whose name describes no query.
As with the added rows of ``data/transfer.py``, a name equal to a validation or test query, or to a training
query, is dropped (case and whitespace aside) and counted.
"""

from __future__ import annotations

import re

from distill_cli.data.transfer import Novelty

# A name that is a numbered placeholder, not a description: "label 3", "class 12", "intent 7", "3".
PLACEHOLDER = re.compile(r"(label|class|intent|category|cat|id)?\s*\d+")


def as_query(name: str) -> str | None:
    """``name`` read as words (snake, kebab, dotted and camel case split, lower case), or None when it reads
    as no words: no word of two letters or more, or a numbered placeholder."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    words = re.sub(r"[\W_]+", " ", spaced).lower().split()
    text = " ".join(words)
    if not any(len(word) >= 2 and word.isalpha() for word in words) or PLACEHOLDER.fullmatch(text):
        return None
    return text


def name_rows(
    label_names: list[str], oos_label: str | None, labelled: list[str], held_out: list[str]
) -> tuple[list[tuple[str, int]], dict[str, int]]:
    """The (query, label id) rows the intents' names make, ids in ``label_names`` order, and their counts for
    ``run.json``: names added, names that read as no words, names dropped as equal to an evaluation query or
    to a training query."""
    novel, rows = Novelty(held_out, labelled), []
    why = {None: "intent_names", "not words": "names_not_words", "leak": "names_as_evaluation_queries",
           "duplicate": "names_as_training_queries"}  # fmt: skip
    counts = dict.fromkeys(why.values(), 0)
    for label, name in enumerate(label_names):
        if name == oos_label:
            continue
        query = as_query(name)
        problem = "not words" if query is None else novel.check(query)
        counts[why[problem]] += 1
        if problem is None:
            rows.append((query, label))
    return rows, counts


def with_name_rows(train, rows: list[tuple[str, int]], tokenizer, max_length: int):
    """The training split with ``rows`` appended as labelled queries, tokenized like the rest."""
    from datasets import Dataset, concatenate_datasets

    if not rows:
        return train
    texts, labels = [t for t, _ in rows], [y for _, y in rows]
    encoded = tokenizer(texts, truncation=True, max_length=max_length)
    columns = {"text": texts, "label": labels, **{k: list(v) for k, v in encoded.items()}}
    extra = Dataset.from_dict({k: columns[k] for k in train.column_names}, features=train.features)
    return concatenate_datasets([train, extra])
