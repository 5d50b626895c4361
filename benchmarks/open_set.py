"""Out of scope with and without out-of-scope training data, on CLINC150 from ../shared; every score.

  1. open-set: "plus" train without `oos_train` (15,000 queries, 150 intents), validation `val` + `oos_val`,
     test `test` + `oos_test` (5,500). `distill finetune --student minilm-l6` with the defaults: the model has
     no out-of-scope output; its score and threshold are chosen on validation's 100 out-of-scope queries;
  2. no out-of-scope anywhere: the same data with every out-of-scope query removed; the fallback
     (`oos_reject` 0.05, the default score) is the rule; evaluated on test with the out-of-scope queries put back;
  3. "plus" (out-of-scope trained, 100 `oos_train` queries as a class): the same command on the full file;
  4. the peer of each, pinned, given the same scores and rules by the tool's own functions: the frozen
     MiniLM-L6, mean pooling, L2 normalisation, `LogisticRegression(C)` with C chosen on validation in-scope
     accuracy from 1, 10, 100; its Mahalanobis statistics fitted on its own (frozen) features.

Every figure is on test; every choice on validation. Runs that exist are reused.
    python benchmarks/open_set.py
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from common import OUT, distill, frozen_minilm, machine, pct, require_clinc, save, train_once

RUNS = OUT / "open-set"
CACHE = OUT / "cache"
SETTINGS = {"minilm-open-set": "open_set", "minilm-no-oos": "no_oos", "minilm-plus": "plus"}
LABELS = {
    "open_set": "open-set (oos in validation and test only)",
    "no_oos": "no out-of-scope data (fallback)",
    "plus": "plus (oos trained as a class)",
}


def datasets(clinc) -> dict:
    """The open-set file and the file without any out-of-scope query (written under benchmarks/out)."""
    data = json.loads(clinc.read_text())
    RUNS.mkdir(parents=True, exist_ok=True)
    files = {
        "open_set": {k: v for k, v in data.items() if k != "oos_train"},
        "no_oos": {k: v for k, v in data.items() if not k.startswith("oos_")},
    }
    paths = {"plus": clinc}
    for name, content in files.items():
        paths[name] = RUNS / f"{name}.json"
        if not paths[name].is_file():
            paths[name].write_text(json.dumps(content))
    return paths


def peer_rule(setting: str, x: dict, y: dict, logits: dict, oos_id: int, intents: list[int]):
    """The tool's rule for the peer, by the tool's own steps: statistics on its training features,
    calibrated on in-scope validation, then ``oos.choose_rule`` (the fallback at oos_reject 0.05)."""
    from distill_cli.oos import choose_rule
    from distill_cli.oos_scores import SCORES, FeatureStats

    keep = y["train"] != oos_id
    stats = FeatureStats.fit(x["train"][keep], y["train"][keep])
    val_y, val_logits, val_x = y["validation"], logits["validation"], x["validation"]
    fallback = setting == "no_oos"
    if fallback:
        val_in = val_y != oos_id  # the fallback's validation has no out-of-scope query
        val_y, val_logits, val_x = val_y[val_in], val_logits[val_in], val_x[val_in]
    in_val = val_y != oos_id
    stats.calibrate(val_logits[in_val][:, intents], val_x[in_val])
    share = 0.05 if fallback else 0.18
    return choose_rule(list(SCORES), fallback, val_logits, val_y, oos_id, "oos", share, val_x, stats, intents), stats


def labelled_splits(path) -> tuple[dict, list[str], dict]:
    """The splits of a CLINC150 file as the tool reads them, the labels (the intents sorted, then `oos`) and
    each split's label ids in that order."""
    from distill_cli.config import Config
    from distill_cli.data.columns import normalise
    from distill_cli.data.sources import read_source

    splits, _, _ = normalise(read_source(str(path)), Config())
    labels = [*sorted(set(splits["train"]["label"]) - {"oos"}), "oos"]
    y = {s: np.array([labels.index(t) for t in splits[s]["label"]]) for s in ("train", "validation", "test")}
    return splits, labels, y


def scored(setting: str, x: dict, y: dict, logits: dict, oos_id: int, intents: list[int]) -> dict:
    """A peer's test figures given the tool's rule (``peer_rule``): its features ``x`` and labels ``y`` of
    train, validation and test, its ``logits`` of validation and test; argmax, with the rule, separation."""
    from distill_cli.metrics import classification_metrics, separation

    rule, stats = peer_rule(setting, x, y, logits, oos_id, intents)
    test_logits, test_x = logits["test"], x["test"]
    preds = rule.apply(test_logits, oos_id, test_x, stats, intents)
    in_scope = y["test"] != oos_id
    turned = rule.confidence(test_logits, test_x, stats, intents) < rule.threshold
    return {
        "rule": rule.model_dump(exclude={"curve"}),
        "argmax": classification_metrics(y["test"], test_logits.argmax(-1), oos_id),
        "with_rule": {**classification_metrics(y["test"], preds, oos_id),
                      "in_scope_rejected": float(turned[in_scope].mean())},  # fmt: skip
        "separation": separation(test_logits, y["test"], oos_id, test_x, stats),
    }


def peers(paths, encode=None, settings=("open_set", "no_oos", "plus")) -> dict:
    """The frozen-encoder probe (``encode``; MiniLM-L6 by default) of each setting with the tool's scores and
    rule."""
    from sklearn.linear_model import LogisticRegression

    encode = encode or frozen_minilm(max_length=128)
    splits, labels, y = labelled_splits(paths["plus"])
    start = time.perf_counter()
    x = {s: encode(splits[s]["text"]) for s in ("train", "validation", "test")}
    oos_id = labels.index("oos")
    encode_s = time.perf_counter() - start
    in_val, probes, out = y["validation"] != oos_id, {}, {}

    def probe(train):
        """LogisticRegression with C chosen on validation in-scope accuracy; its logits."""
        fit = lambda c: LogisticRegression(C=c, max_iter=1000).fit(x["train"][train], y["train"][train])  # noqa: E731
        heads = {c: fit(c) for c in (1, 10, 100)}
        right = {c: h.predict(x["validation"])[in_val] == y["validation"][in_val] for c, h in heads.items()}
        accuracy = {c: float(r.mean()) for c, r in right.items()}
        best = max(accuracy, key=accuracy.get)
        return best, accuracy, {s: heads[best].decision_function(x[s]) for s in ("validation", "test")}

    for setting in settings:
        start = time.perf_counter()
        train = np.ones(len(y["train"]), bool) if setting == "plus" else y["train"] != oos_id
        kind = "plus" if setting == "plus" else "in_scope"  # open-set and no-oos train the same probe
        probes[kind] = probes.get(kind) or probe(train)
        best_c, accuracy, logits = probes[kind]
        intents = list(range(oos_id))  # every setting: the intents' columns, never an oos one
        out[setting] = {
            "C": best_c,
            "validation_in_scope_accuracy": accuracy,
            **scored(setting, {**x, "train": x["train"][train]}, {**y, "train": y["train"][train]}, logits, oos_id,
                     intents),  # fmt: skip
        }
        out[setting]["seconds"] = round(time.perf_counter() - start + encode_s, 1)
    return out


def main() -> None:
    clinc = require_clinc()
    paths = datasets(clinc)
    results = {"machine": machine(), "command": " ".join(sys.argv)}
    common = ("--student", "minilm-l6", "--cache-dir", CACHE)
    for name, setting in SETTINGS.items():
        results[f"{setting}_run"] = train_once("finetune", RUNS, name, "--dataset", paths[setting], *common)
    where = ("--runs-dir", RUNS, "--cache-dir", CACHE, "--split", "test", "--dataset", paths["open_set"])
    results["evaluation"] = distill("evaluate", *SETTINGS, *where, "--latency-runs", "50")
    print("$ the frozen MiniLM-L6 probes", file=sys.stderr)
    results["peer"] = peers(paths)
    save("open_set", results)
    print(summary(results))


def summary(results: dict) -> str:
    """Two tables: each setting's model and its peer with their rules (accuracy by argmax and with the rule,
    the rule's parts); then how well every score separates, whatever the threshold."""
    from distill_cli.oos_scores import SCORES

    models = {m["model"]: m for m in results["evaluation"]["models"]}
    rows = []
    for name, setting in SETTINGS.items():
        m, p = models[name], results["peer"][setting]
        rows.append((setting, "MiniLM-L6 fine-tuned", m["oos_rule"], m["accuracy"], m["oos_rule"], m["separation"]))
        rows.append((setting, f"peer: frozen MiniLM-L6 + LR(C={p['C']})", p["rule"], p["argmax"]["accuracy"],
                     p["with_rule"], p["separation"]))  # fmt: skip
    lines = [
        "| setting | model | rule (score, chosen on validation) | argmax acc. % | with the rule: acc. % | in-scope % "
        "| OOS recall % | in-scope turned away % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for setting, name, rule, argmax, with_rule, _ in rows:
        kind = f"fallback {rule['reject_share']}" if rule.get("reject_share") else "threshold"
        lines.append(
            f"| {LABELS[setting]} | {name} | {rule['score']}, {kind} | {pct(argmax)} | {pct(with_rule['accuracy'])} "
            f"| {pct(with_rule['in_scope_accuracy'])} | {pct(with_rule['oos_recall'])} "
            f"| {pct(with_rule['in_scope_rejected'])} |"
        )
    lines += ["", "| setting | model | score | AUROC | FPR@95 % | OOS recall at in-scope acc. ≥ 95% |"]
    lines.append("|---|---|---|---|---|---|")
    for setting, name, _, _, _, sep in rows:
        for score in SCORES:
            if score in sep:
                s = sep[score]
                lines.append(f"| {LABELS[setting]} | {name} | {score} | {s['auroc']:.4f} | {pct(s['fpr_at_95_tpr'])} "
                             f"| {pct(s.get('oos_recall_at_95_in_scope_accuracy'))} |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
