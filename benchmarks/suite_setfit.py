"""SetFit on a dataset of the suite (``suite.py`` runs it in a virtual environment of its own, where setfit's
pins cannot clash with the tool's): contrastive fine-tuning of all-MiniLM-L6-v2 on pairs, then its
LogisticRegression head, with the settings of SetFit's few-shot quickstart (``num_iterations=20``, batch 16,
one epoch). Writes the body's embeddings of every split and the head's decision function on validation and
test (``NAME.npz``), for ``suite.py`` to give the tool's scores and rule.

    .venv-peers/bin/python benchmarks/suite_setfit.py BODY TRAIN_JSON OUT_NPZ [--seed 42] [--iterations 20]

TRAIN_JSON: {"labels": [...], "splits": {"train": {"text": [...], "label": [...]}, "validation": ..., "test": ...}}
(the splits as the tool reads them, written by suite.py; labels as ids into ``labels``, the intents first).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("body")
    parser.add_argument("data")
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--iterations", type=int, default=20, help="SetFit's num_iterations (pairs per query)")
    args = parser.parse_args()

    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    data = json.loads(open(args.data).read())
    splits = data["splits"]
    model = SetFitModel.from_pretrained(args.body)
    train = Dataset.from_dict({"text": splits["train"]["text"], "label": splits["train"]["label"]})
    # Its checkpoints (optimizer state and pickled arguments) go to a scratch folder, never the working one.
    with tempfile.TemporaryDirectory(prefix="setfit-") as scratch:
        settings = TrainingArguments(batch_size=16, num_epochs=1, num_iterations=args.iterations, seed=args.seed,
                                     report_to="none", output_dir=scratch, save_strategy="no")
        trainer = Trainer(model=model, args=settings, train_dataset=train)
        start = time.perf_counter()
        trainer.train()
        train_s = time.perf_counter() - start
    out = {"train_s": np.array(train_s), "classes": np.array(model.model_head.classes_)}
    for split, table in splits.items():
        embeddings = model.encode(table["text"])
        embeddings = embeddings.cpu().numpy() if hasattr(embeddings, "cpu") else np.asarray(embeddings)
        out[f"x_{split}"] = embeddings
        if split != "train":
            out[f"logits_{split}"] = model.model_head.decision_function(embeddings)
    np.savez(args.out, **out)


if __name__ == "__main__":
    main()
