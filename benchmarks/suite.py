"""The benchmark suite (issue "Win on data nobody here tuned for"): datasets none of the tool's defaults were
chosen on, the tool's defaults as the README gives them, and in the same run the peers a user would pick
instead, each given the tool's scores and rule.

Datasets (``../shared/datasets``, read there; what this script derives goes under benchmarks/out/suite/data):
  - clinc-10shot, clinc-5shot: CLINC150's standard few-shot training splits, ``train.csv`` alone (no
    validation split: the realistic setting), the 4,500 in-scope test queries;
  - banking, credit_cards: CLINC-Single-Domain-OOS, open-set (train has 10 intents and no out-of-scope
    label; validation and test add in-domain and general out-of-scope queries, ``*_kind.txt`` says which);
  - clinc-small: CLINC150 ``data_small`` (50 queries an intent, 100 out-of-scope in train);
  - clinc-third: CLINC150 "plus", every third intent (50 of 150) with all its out-of-scope queries.

Models, each on test:
  - the tool: ``distill finetune --student minilm-l6`` (the teacher, the README's defaults) and ``distill
    distill --teacher <it> --student <it> --student-layers 3`` (the README's student);
  - the peers, pinned: all-MiniLM-L6-v2 frozen (mean pooling, L2-normalised) + scikit-learn's
    ``LogisticRegression`` with C from 1, 10, 100 chosen on the validation split the data gives, else by
    5-fold cross-validation on train (the user's ``LogisticRegressionCV``), refitted on all of train; and
    model2vec's classifier on the same encoder's vectors. Each is given the tool's scores and rule by the
    tool's own functions: on data with out-of-scope validation queries the score of the best validation AUROC
    and the threshold of the best expected accuracy; elsewhere the fallback (``oos_reject``), its threshold
    on validation or, without one, on the probe's out-of-fold logits.

Figures: argmax accuracy; with the rule where the data has out-of-scope queries; the AUROC of each model's
chosen score for in-domain and general out-of-scope queries separately where the kinds are given; the
share of in-scope test queries the fallback turned away where the data has no out-of-scope label; the
training seconds. Choices are made on validation; test only reports.

    python benchmarks/suite.py [--datasets clinc-10shot,banking] [--seeds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from common import OUT, REPO, machine, pct, save, train_once

os.environ["TQDM_DISABLE"] = "1"  # model2vec's own progress bars (tqdm reads it when first imported)
SHARED = REPO.parent / "shared" / "datasets"
HERE = OUT / "suite"
CACHE = OUT / "cache"
DATA = HERE / "data"


@dataclass(frozen=True)
class Data:
    name: str
    source: Path  # what the tool reads (a folder of per-split files, or a CLINC150 json)
    kinds: Path | None = None  # test_kind.txt: in, id-oos or ood-oos per test row
    runs: str | None = None  # the folder of its runs, when another dataset's runs are the same training

    @property
    def runs_dir(self) -> Path:
        return HERE / "runs" / (self.runs or self.name)


def clinc_third() -> Path:
    """CLINC150 "plus" with every third intent (sorted by name) and all its out-of-scope queries."""
    path = DATA / "clinc-third.json"
    if not path.is_file():
        data = json.loads((SHARED / "clinc150" / "data_oos_plus.json").read_text())
        intents = sorted({label for _, label in data["train"]})[::3]
        kept = {k: [row for row in v if k.startswith("oos_") or row[1] in intents] for k, v in data.items()}
        DATA.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(kept))
    return path


def few_shot_validation(few: Path, shots: int) -> Path:
    """A folder with the few-shot ``train.csv`` and CLINC150's validation split as its test split, to choose
    the tool's defaults on (never on test) while the tool trains as a user's run would, on train alone."""
    folder = DATA / f"{shots}shot-val"
    folder.mkdir(parents=True, exist_ok=True)
    for name, target in (("train.csv", "train.csv"), ("test.csv", "validation-full.csv")):
        link = folder / name
        if not link.exists():
            link.symlink_to(few / f"{shots}shot" / target)
    return folder


def one_domain_few_shot(domain: Path, shots: int) -> Path:
    """A one-domain open-set set with its first ``shots`` training queries an intent (validation and test as
    they are): few-shot data that is not CLINC150's, to choose the few-shot recipe on beside it."""
    import csv

    folder = DATA / f"{domain.name}-{shots}shot"
    if not (folder / "train.csv").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        with (domain / "train.csv").open(newline="") as f:
            rows, seen = [], {}
            for row in csv.DictReader(f):
                if seen.get(row["label"], 0) < shots:
                    rows.append(row)
                    seen[row["label"]] = seen.get(row["label"], 0) + 1
        with (folder / "train.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["text", "label"])
            writer.writeheader()
            writer.writerows(rows)
        for name in ("validation.csv", "test.csv", "validation_kind.txt", "test_kind.txt"):
            (folder / name).symlink_to(domain / name)
    return folder


def datasets() -> dict[str, Data]:
    few, sdo = SHARED / "clinc150-fewshot", SHARED / "clinc-single-domain-oos"
    found = {
        "clinc-10shot": Data("clinc-10shot", few / "10shot"),
        "clinc-5shot": Data("clinc-5shot", few / "5shot"),
        "banking": Data("banking", sdo / "banking", sdo / "banking" / "test_kind.txt"),
        "credit_cards": Data("credit_cards", sdo / "credit_cards", sdo / "credit_cards" / "test_kind.txt"),
        "clinc-small": Data("clinc-small", SHARED / "clinc150" / "data_small.json"),
    }
    for shots in (10, 5):  # choosing only: train.csv, and CLINC150's validation split in place of test
        # The same train.csv and the same carved validation split: the same runs as the test set's.
        found[f"clinc-{shots}shot-val"] = Data(f"clinc-{shots}shot-val", few_shot_validation(few, shots),
                                               runs=f"clinc-{shots}shot")  # fmt: skip
    for domain in ("banking", "credit_cards"):  # choosing only (validation): few-shot data beside CLINC150's
        if (sdo / domain).is_dir():
            folder = one_domain_few_shot(sdo / domain, 5)
            found[f"{domain}-5shot"] = Data(f"{domain}-5shot", folder, folder / "test_kind.txt")
    if (SHARED / "clinc150").is_dir():
        found["clinc-third"] = Data("clinc-third", clinc_third())
    return found


# ------------------------------------------------------------------------------------------------ the data


def splits_of(data: Data) -> tuple[dict, list[str], str | None]:
    """The splits as the tool reads them (``train``, ``test`` and ``validation`` where given), the intents
    (sorted) and the out-of-scope label where the data has one."""
    from distill_cli.config import Config
    from distill_cli.data.columns import normalise
    from distill_cli.data.sources import read_source

    cfg = Config()
    splits, _, _ = normalise(read_source(str(data.source)), cfg)
    found = {label for table in splits.values() for label in table["label"]}
    oos = cfg.oos_label if cfg.oos_label in found else None
    return splits, sorted(set(splits["train"]["label"]) - {cfg.oos_label}), oos


def label_ids(splits: dict, intents: list[str], oos: str | None):
    """The labels in id order (the intents, then the out-of-scope label where the data has one), the
    out-of-scope id (after the intents, trained or not), each split's ids, whether train has out-of-scope
    queries, and the training rows a peer fits on (all of them where it has, else the in-scope ones)."""
    labels = intents + ([oos] if oos else [])
    oos_id = len(intents)
    y = {s: np.array([labels.index(t) if t in labels else oos_id for t in splits[s]["label"]]) for s in splits}
    trained_oos = oos is not None and bool((y["train"] == oos_id).any())
    train = np.ones(len(y["train"]), bool) if trained_oos else y["train"] != oos_id
    return labels, oos_id, y, trained_oos, train


def kinds_of(data: Data, test: dict) -> np.ndarray:
    """Each test row's kind: the file's where given, else ``in`` or ``oos`` by its label."""
    if data.kinds is not None:
        kinds = np.array(data.kinds.read_text().split())
        if len(kinds) != len(test["label"]):
            sys.exit(f"{data.kinds}: {len(kinds)} kinds for {len(test['label'])} test rows")
        return kinds
    return np.array(["oos" if label == "oos" else "in" for label in test["label"]])


def auroc_by_kind(confidence: np.ndarray, kinds: np.ndarray) -> dict:
    """AUROC of ``-confidence`` for each kind of out-of-scope query against the in-scope ones."""
    from sklearn.metrics import roc_auc_score

    out = {}
    for kind in sorted(set(kinds) - {"in"}):
        rows = (kinds == "in") | (kinds == kind)
        out[kind] = float(roc_auc_score(kinds[rows] == kind, -confidence[rows]))
    return out


def figures(y: np.ndarray, argmax: np.ndarray, decided: np.ndarray, oos_id: int, conf, kinds) -> dict:
    """Argmax accuracy, accuracy with the rule, in-scope and out-of-scope figures, AUROC by kind."""
    from distill_cli.metrics import classification_metrics

    in_scope = y != oos_id
    out = {
        "argmax": float((argmax == y).mean()),
        "with_rule": classification_metrics(y, decided, oos_id)["accuracy"],
        "in_scope_argmax": float((argmax == y)[in_scope].mean()),
        "in_scope_turned_away": float((decided == oos_id)[in_scope].mean()),
    }
    if (~in_scope).any():
        out["oos_recall"] = float((decided == oos_id)[~in_scope].mean())
        out["auroc"] = auroc_by_kind(np.asarray(conf), kinds)
    return out


# ----------------------------------------------------------------------------------------------- the peers


def probe_peer(data: Data) -> dict:
    """The frozen MiniLM-L6 + LogisticRegression, given the tool's rule."""
    from common import frozen_minilm
    from sklearn.linear_model import LogisticRegression

    splits, intents, oos = splits_of(data)
    start = time.perf_counter()
    encode = frozen_minilm(max_length=128)
    x = {s: encode(t["text"]) for s, t in splits.items()}

    def fit(c, features, labels):
        return LogisticRegression(C=c, max_iter=2000).fit(features, labels)

    def head(features, labels, pick_on):
        """C chosen on ``pick_on`` (validation features and labels, in scope), else by 5-fold CV; the
        held-out logits it was chosen on come back too (out-of-fold without a validation split)."""
        grid = (1, 10, 100)
        if pick_on is not None:
            vx, vy = pick_on
            heads = {c: fit(c, features, labels) for c in grid}
            score = {c: float((heads[c].predict(vx) == vy).mean()) for c in grid}
            best = max(grid, key=score.get)
            return heads[best], best, score, None
        folds = cross_val_folds(labels)
        oof = {c: np.zeros((len(labels), len(intents))) for c in grid}
        for held in folds:
            keep = ~held
            for c in grid:
                oof[c][held] = fit(c, features[keep], labels[keep]).decision_function(features[held])
        score = {c: float((oof[c].argmax(-1) == labels).mean()) for c in grid}
        best = max(grid, key=score.get)
        return fit(best, features, labels), best, score, oof[best]

    labels, oos_id, y, trained_oos, train = label_ids(splits, intents, oos)
    pick_on = None
    if "validation" in splits:
        in_val = y["validation"] != oos_id
        pick_on = (x["validation"][in_val], y["validation"][in_val])
    classifier, c, score, oof = head(x["train"][train], y["train"][train], pick_on)
    train_s = time.perf_counter() - start
    logits = {s: classifier.decision_function(x[s]) for s in splits if s != "train"}
    if oof is not None:  # the rule is chosen on the out-of-fold logits of train
        logits["validation"], y["validation"] = oof, y["train"][train]
    return {"C": c, "selection": score, "train_s": round(train_s, 1),
            **peer_figures(data, splits, x, y, logits, oos_id, train, trained_oos)}  # fmt: skip


def cross_val_folds(labels: np.ndarray, k: int = 5, seed: int = 42) -> list[np.ndarray]:
    """Stratified folds: masks of the rows each fold holds out."""
    from sklearn.model_selection import StratifiedKFold

    k = max(2, min(k, int(np.bincount(labels).min())))
    out = []
    for _, held in StratifiedKFold(k, shuffle=True, random_state=seed).split(labels, labels):
        mask = np.zeros(len(labels), bool)
        mask[held] = True
        out.append(mask)
    return out


def peer_figures(data, splits, x, y, logits, oos_id, train, trained_oos) -> dict:
    """A peer's test figures with the tool's rule, chosen on its validation logits (``open_set.peer_rule``).
    Without a validation split the validation logits are the out-of-fold ones of train, on which a feature
    score's statistics (fitted on train) would be flattering: the fallback then thresholds ``energy``, the
    tool's logit score."""
    sys.path.insert(0, str(Path(__file__).parent))
    from open_set import peer_rule

    from distill_cli.oos import choose_rule

    intents, test_logits = list(range(oos_id)), logits["test"]
    if "validation" not in splits:
        stats = None
        rule = choose_rule(["energy"], True, logits["validation"], y["validation"], oos_id, "oos", 0.05,
                           intents=intents)  # fmt: skip
    else:
        setting = "plus" if trained_oos else "open_set" if (y["validation"] == oos_id).any() else "no_oos"
        rule, stats = peer_rule(setting, {**x, "train": x["train"][train]}, {**y, "train": y["train"][train]},
                                {"validation": logits["validation"], "test": test_logits}, oos_id, intents)  # fmt: skip
    conf = rule.confidence(test_logits, x["test"], stats, intents)
    decided = rule.apply(test_logits, oos_id, x["test"], stats, intents)
    argmax = np.asarray(intents)[test_logits[:, intents].argmax(-1)]
    out = figures(y["test"], argmax, decided, oos_id, conf, kinds_of(data, splits["test"]))
    return {"rule": {"score": rule.score, "threshold": rule.threshold}, **out}


M2V_VECTORS = DATA / "model2vec-minilm"  # model2vec's distill of all-MiniLM-L6-v2, made once for every set


def model2vec_vectors():
    """model2vec's own ``distill`` of all-MiniLM-L6-v2 (its defaults but PCA 256, as the real-scale table's
    peer), made once and kept for every dataset, and the seconds it took."""
    from model2vec import StaticModel

    seconds = M2V_VECTORS / "distill_s.txt"
    if not seconds.is_file():
        from model2vec.distill import distill

        from distill_cli.config import Config
        from distill_cli.modeling import resolve_model

        start = time.perf_counter()
        static = distill(resolve_model("minilm-l6", Config()).location, pca_dims=256)
        static.save_pretrained(str(M2V_VECTORS))
        seconds.write_text(f"{time.perf_counter() - start:.1f}")  # written last: the folder is complete
    return StaticModel.from_pretrained(str(M2V_VECTORS)), float(seconds.read_text())


def model2vec_peer(data: Data) -> dict | None:
    """model2vec's classifier on all-MiniLM-L6-v2's vectors (``StaticModelForClassification().fit`` with its
    defaults; the in-scope validation queries for its early stopping where the data gives a validation split,
    else its own carve of train), given the tool's rule where the data has a validation split (without one, as
    SetFit: argmax alone). Its features for the rule: its mean static vector."""
    try:
        from model2vec.train import StaticModelForClassification
    except ImportError:
        print("model2vec[train] is not installed: its peer skipped (make install has it)", file=sys.stderr)
        return None
    splits, intents, oos = splits_of(data)
    labels, oos_id, y, trained_oos, train = label_ids(splits, intents, oos)
    static, distill_s = model2vec_vectors()
    texts = {s: list(splits[s]["text"]) for s in splits}
    fit_on = {"X": [t for t, keep in zip(texts["train"], train) if keep], "y": [labels[i] for i in y["train"][train]]}
    if "validation" in splits:
        known = np.isin(y["validation"], np.unique(y["train"][train]))
        fit_on["X_val"] = [t for t, keep in zip(texts["validation"], known) if keep]
        fit_on["y_val"] = [labels[i] for i in y["validation"][known]]
    start = time.perf_counter()
    classifier = StaticModelForClassification.from_static_model(model=static).fit(**fit_on).eval()
    train_s = round(time.perf_counter() - start, 1)
    order = [list(classifier.classes_).index(label) for label in labels if label in classifier.classes_]
    logits = {s: classifier.encode(texts[s])[:, order] for s in splits if s != "train"}
    timing = {"train_s": train_s, "distill_s": distill_s}
    if "validation" not in splits:
        return {**timing, **argmax_figures(data, splits, y, logits, oos_id)}
    tuned = classifier.to_static_model()  # its features, for the rule's feature scores
    x = {s: tuned.encode(texts[s]) for s in splits}
    return {**timing, **peer_figures(data, splits, x, y, logits, oos_id, train, trained_oos)}


def argmax_figures(data: Data, splits: dict, y: dict, logits: dict, oos_id: int) -> dict:
    """A peer's test figures without a rule (no validation split to choose one on): the top intent."""
    argmax = np.asarray(range(oos_id))[logits["test"][:, :oos_id].argmax(-1)]
    return {"rule": None, **figures(y["test"], argmax, argmax, oos_id, None, kinds_of(data, splits["test"]))}


PEERS_VENV = REPO / ".venv-peers"  # setfit, in an environment of its own (``make bench-suite`` makes it)


def setfit_peer(data: Data, iterations: int, seed: int = 42) -> dict | None:
    """SetFit on the same body (``suite_setfit.py``, in ``PEERS_VENV``), given the tool's rule where the data
    has a validation split (without one, SetFit has nothing to choose a threshold on: argmax alone)."""
    import subprocess

    from distill_cli.config import Config
    from distill_cli.modeling import resolve_model

    python = PEERS_VENV / "bin" / "python"
    if not python.is_file():
        print(f"no {PEERS_VENV}: SetFit skipped (make bench-suite makes it)", file=sys.stderr)
        return None
    splits, intents, oos = splits_of(data)
    labels, oos_id, y, trained_oos, train = label_ids(splits, intents, oos)
    payload = {s: {"text": list(splits[s]["text"]), "label": y[s].tolist()} for s in splits}
    payload["train"] = {k: [v for v, keep in zip(payload["train"][k], train) if keep] for k in ("text", "label")}
    folder = DATA / "setfit"
    folder.mkdir(parents=True, exist_ok=True)
    source, out = folder / f"{data.name}.json", folder / f"{data.name}-i{iterations}-s{seed}.npz"
    source.write_text(json.dumps({"labels": labels, "splits": payload}))
    if not out.is_file():
        body = resolve_model("minilm-l6", Config()).location
        script = Path(__file__).with_name("suite_setfit.py")
        cmd = [str(python), str(script), str(body), str(source), str(out), "--seed", str(seed),
               "--iterations", str(iterations)]  # fmt: skip
        print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    saved = np.load(out)
    x = {s: saved[f"x_{s}"] for s in splits}
    logits = {s: saved[f"logits_{s}"] for s in splits if s != "train"}
    y["train"] = y["train"][train]
    if "validation" not in splits:
        return {"train_s": round(float(saved["train_s"]), 1), **argmax_figures(data, splits, y, logits, oos_id)}
    every = np.ones(len(y["train"]), bool)
    return {"train_s": round(float(saved["train_s"]), 1),
            **peer_figures(data, splits, x, y, logits, oos_id, every, trained_oos)}  # fmt: skip


# ------------------------------------------------------------------------------------------------ the tool


def mpnet_installed() -> bool:
    from distill_cli.model_parts import installed_parts
    from distill_cli.modeling import MPNET_PARTS

    return installed_parts(MPNET_PARTS) is not None


def common_flags(data: Data, seed: int) -> tuple:
    """The flags every run of the suite on ``data`` has: the data, the shared teacher cache, the seed."""
    return ("--dataset", data.source, "--cache-dir", CACHE, "--seed", str(seed))


def minilm_teacher(data: Data, seed: int = 42, name: str = "teacher") -> dict:
    """The MiniLM-L6 teacher on ``data`` (``distill finetune --student minilm-l6``), trained unless it exists."""
    return train_once("finetune", data.runs_dir, name, "--student", "minilm-l6", *common_flags(data, seed))


def tool_runs(data: Data, seed: int, mpnet: bool = True) -> dict[str, dict]:
    """The README's commands on ``data``: the MiniLM-L6 teacher, then the student cut from it (3 layers) and
    distilled; where ``mpnet-base`` is installed (and ``mpnet``), the MPNet teacher and MiniLM-L6 distilled
    from it."""
    runs = data.runs_dir
    common = common_flags(data, seed)
    suffix = "" if seed == 42 else f"-s{seed}"
    out = {"teacher": minilm_teacher(data, seed, f"teacher{suffix}")}
    folder = runs / out["teacher"]["name"]
    out["student"] = train_once("distill", runs, f"student{suffix}", "--teacher", folder, "--student", folder,
                                "--student-layers", "3", *common)  # fmt: skip
    if mpnet and mpnet_installed():
        out["mpnet-teacher"] = train_once("finetune", runs, f"mpnet{suffix}", "--student", "mpnet-base", *common)
        folder = runs / out["mpnet-teacher"]["name"]
        out["mpnet-student"] = train_once("distill", runs, f"minilm-from-mpnet{suffix}", "--teacher", folder,
                                          "--student", "minilm-l6", *common)  # fmt: skip
    return out


def tool_figures(data: Data, folder: Path) -> dict:
    """A run's test figures: its own rule (``predict``'s), argmax, AUROC of its score by kind."""
    from distill_cli.commands.predict import Predictor
    from distill_cli.config import Config

    splits, intents, oos = splits_of(data)
    predictor = Predictor.load(Config(cache_dir=CACHE), str(folder))
    texts, labels = splits["test"]["text"], splits["test"]["label"]
    answers = predictor(texts)
    names = predictor.labels
    oos_label = predictor.oos_label
    oos_id = len(names) + 1  # an id no intent has
    ids = {n: i for i, n in enumerate(names) if n != oos_label}
    y = np.array([ids.get(t, oos_id) for t in labels])
    argmax = np.array([ids.get(a["top_k"][0]["intent"], oos_id) for a in answers])
    decided = np.array([oos_id if a["out_of_scope"] else ids.get(a["intent"], oos_id) for a in answers])
    conf = np.array([a["confidence"] if a["confidence"] is not None else a["probability"] for a in answers])
    out = figures(y, argmax, decided, oos_id, conf, kinds_of(data, splits["test"]))
    return {"rule": (predictor.rule.score if predictor.rule else None), **out}


# -------------------------------------------------------------------------------------------------- report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=None, help="comma-separated names (default: all)")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--peers-only", action="store_true")
    parser.add_argument("--without-mpnet", action="store_true", help="the MiniLM-L6 teacher and its student only")
    parser.add_argument("--without-model2vec", action="store_true", help="not model2vec's classifier")
    parser.add_argument("--setfit", action="store_true", help="SetFit too (in .venv-peers)")
    parser.add_argument("--setfit-iterations", type=int, default=20, help="its num_iterations (quickstart: 20)")
    args = parser.parse_args()
    found = datasets()
    names = args.datasets.split(",") if args.datasets else list(found)
    path = OUT / "suite.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    results.update(machine=machine(), command=" ".join(sys.argv))
    table = results.setdefault("datasets", {})
    for name in names:
        data = found[name]
        entry = table.setdefault(name, {})
        print(f"$ {name}: the frozen MiniLM-L6 probe", file=sys.stderr)
        entry["probe-minilm"] = probe_peer(data)
        if not args.without_model2vec:
            print(f"$ {name}: model2vec's classifier", file=sys.stderr)
            entry["model2vec"] = model2vec_peer(data)
        if args.setfit and data.runs is None:  # not on a choosing set: its runs are the test set's
            entry[f"setfit-i{args.setfit_iterations}"] = setfit_peer(data, args.setfit_iterations)
        if not args.peers_only:
            for seed in range(42, 42 + args.seeds):
                for role, record in tool_runs(data, seed, not args.without_mpnet).items():
                    key = role if seed == 42 else f"{role}-s{seed}"
                    folder = data.runs_dir / record["name"]
                    entry[key] = {"train_s": record.get("train_s"), "recipe": record.get("recipe"),
                                  **tool_figures(data, folder)}  # fmt: skip
        save("suite", results)
    print(summary(results))


def headline(f: dict) -> float:
    """The figure the targets read: accuracy with the rule where the data has out-of-scope queries, else
    argmax accuracy."""
    return f["with_rule"] if "oos_recall" in f else f["argmax"]


def summary(results: dict) -> str:
    lines = ["| dataset | model | argmax % | with the rule % | vs probe (pt) | in-scope turned away % | OOS recall % "
             "| AUROC in-domain | AUROC general | train s |", "|---" * 10 + "|"]  # fmt: skip
    for name, models in results["datasets"].items():
        probe = models.get("probe-minilm")
        for model, f in models.items():
            if f is None:
                continue
            auroc = f.get("auroc") or {}
            general = auroc.get("ood-oos", auroc.get("oos"))
            delta = "—" if probe is None or model == "probe-minilm" else f"{(headline(f) - headline(probe)) * 100:+.2f}"
            lines.append(
                f"| {name} | {model} | {pct(f['argmax'])} | {pct(f['with_rule']) if 'oos_recall' in f else '—'} "
                f"| {delta} | {pct(f['in_scope_turned_away'])} | {pct(f.get('oos_recall'))} "
                f"| {fmt(auroc.get('id-oos'))} | {fmt(general)} | {f.get('train_s') or '—'} |"
            )
    return "\n".join(lines)


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
