"""Where a static model's vectors come from, and model2vec's own training options (issue "Students that beat
every peer"): variants of the model2vec peer's recipe on CLINC150 "plus", each trained by model2vec's own
`StaticModelForClassification().fit` (seed 42, validation for its early stopping), each scored on validation
by the expected accuracy with the tool's rule (`open_set.peer_rule`: the score by AUROC, the threshold by
expected accuracy at `oos_share` 0.18). Validation only: it chooses, it does not report test.

The variants:
  - plain: `distill_from_model(<encoder>, pca_dims=256)` (the peer's vectors, one forward pass per token);
  - vocab: the same with `vocabulary=` the training queries' own words (whole-word tokens of model2vec's);
  - ctx-<share>: every token seen in the training queries moves towards the mean of its contextual vectors
    there (last layer, scaled to the single-token vectors' mean norm) by that share, then model2vec's PCA
    and SIF weights; the tokens never seen keep their single-token vector;
  - model2vec's `fit` options `class_weight="balanced"` and `focal_gamma=2`.

    python benchmarks/static_vectors.py [VARIANT ...]   (about 30 minutes on 2 cores; MPNet's pass is most)
"""

from __future__ import annotations

import json
import re
import sys
import time

import numpy as np
from common import OUT, machine, require_clinc, save
from open_set import labelled_splits, peer_rule
from static_student import outputs

# name: (encoder, how its vectors are made, model2vec fit options)
VARIANTS = {
    "plain": ("minilm-l6", "plain", {}),
    "vocab": ("minilm-l6", "vocab", {}),
    "ctx-1.0": ("minilm-l6", "ctx-1.0", {}),
    "ctx-0.5": ("minilm-l6", "ctx-0.5", {}),
    "mpnet-ctx-0.5": ("mpnet-base", "ctx-0.5", {}),
    "plain-balanced": ("minilm-l6", "plain", {"class_weight": "balanced"}),
    "plain-focal2": ("minilm-l6", "plain", {"focal_gamma": 2.0}),
}


def static_vectors(encoder: str, how: str, texts: list[str]):
    """The StaticModel of ``encoder`` made as ``how`` says (``VARIANTS``)."""
    from model2vec.distill import distill_from_model
    from transformers import AutoModel, AutoTokenizer

    from distill_cli.config import Config
    from distill_cli.modeling import resolve_model

    path = resolve_model(encoder, Config()).location
    tokenizer, body = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    if how == "plain":
        return distill_from_model(body, tokenizer, pca_dims=256)
    if how == "vocab":
        words = sorted({w for t in texts for w in re.findall(r"[a-z']+", t.lower())})
        return distill_from_model(body, tokenizer, pca_dims=256, vocabulary=words)
    return contextual(body, tokenizer, texts, mix=float(how.split("-")[1]))


def contextual(body, tokenizer, texts: list[str], mix: float):
    """model2vec's single-token vectors with those of the tokens seen in ``texts`` moved towards (``mix``) the
    mean of their contextual vectors there; then PCA to 256 and model2vec's SIF weights."""
    import torch
    from model2vec import StaticModel
    from model2vec.distill import distill_from_model
    from model2vec.distill.inference import apply_pca, compute_weights

    raw = distill_from_model(body, tokenizer, pca_dims=None, sif_coefficient=None, quantize_to="float32")
    vectors = np.asarray(raw.embedding, dtype=np.float64).copy()
    static_id = {tokenizer.convert_tokens_to_ids(t): i for t, i in raw.tokenizer.get_vocab().items()}
    static_id.pop(tokenizer.unk_token_id, None)
    for special in tokenizer.all_special_ids:
        static_id.pop(special, None)
    sums, counts = np.zeros_like(vectors), np.zeros(len(vectors))
    with torch.no_grad():
        for i in range(0, len(texts), 64):
            batch = tokenizer(texts[i : i + 64], padding=True, truncation=True, max_length=64, return_tensors="pt")
            hidden = body(**batch).last_hidden_state.numpy()
            for (r, c), token in np.ndenumerate(batch["input_ids"].numpy()):
                if batch["attention_mask"][r, c] and int(token) in static_id:
                    sums[static_id[int(token)]] += hidden[r, c]
                    counts[static_id[int(token)]] += 1
    seen = counts > 0
    means = sums[seen] / counts[seen][:, None]
    means *= np.linalg.norm(vectors[seen], axis=1).mean() / np.linalg.norm(means, axis=1).mean()
    vectors[seen] = mix * means + (1 - mix) * vectors[seen]
    vectors = apply_pca(vectors, 256) * compute_weights(len(vectors), sif_coefficient=1e-4)[:, None]
    return StaticModel(vectors=vectors.astype(np.float32), tokenizer=raw.tokenizer, config=raw.config, normalize=True)


def validation_scores(static, fit: dict, splits: dict, labels: list[str], y: dict) -> dict:
    """model2vec's classifier on ``static`` fit with ``fit``; its validation argmax accuracy, the tool's rule
    and the expected accuracy at its threshold."""
    from model2vec.train import StaticModelForClassification

    classifier = StaticModelForClassification.from_static_model(model=static)
    classifier.fit(splits["train"]["text"], splits["train"]["label"], X_val=splits["validation"]["text"],
                   y_val=splits["validation"]["label"], **fit)  # fmt: skip
    x, logits = outputs(classifier.eval(), splits, labels)
    oos_id = labels.index("oos")
    rule, _ = peer_rule("plus", x, y, logits, oos_id, list(range(oos_id)))
    expected = max((1 - rule.oos_share) * acc + rule.oos_share * rec for _, acc, rec in rule.curve)
    argmax = float((logits["validation"].argmax(-1) == y["validation"]).mean())
    return {"validation_argmax": argmax, "score": rule.score, "validation_expected": float(expected)}


def main() -> None:
    """Every variant, or those named on the command line; results saved after each (merged into the file of
    an earlier run of other variants)."""
    names = sys.argv[1:] or list(VARIANTS)
    if unknown := set(names) - set(VARIANTS):
        sys.exit(f"unknown variants {sorted(unknown)}: one of {', '.join(VARIANTS)}")
    splits, labels, y = labelled_splits(require_clinc())
    earlier = OUT / "static_vectors.json"
    results = json.loads(earlier.read_text()) if earlier.is_file() else {"variants": {}}
    results.update(machine=machine(), command=" ".join(sys.argv))
    for name in names:
        encoder, how, fit = VARIANTS[name]
        start = time.perf_counter()
        static = static_vectors(encoder, how, splits["train"]["text"])
        scores = validation_scores(static, fit, splits, labels, y)
        results["variants"][name] = {"encoder": encoder, "vectors": how, "fit": fit, **scores,
                                     "seconds": round(time.perf_counter() - start)}  # fmt: skip
        print(name, results["variants"][name], file=sys.stderr, flush=True)
        save("static_vectors", results)
    print(summary(results))


def summary(results: dict) -> str:
    lines = ["| variant | encoder | vectors | fit options | validation argmax % | score | expected with the rule % |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, v in results["variants"].items():
        lines.append(
            f"| {name} | {v['encoder']} | {v['vectors']} | {v['fit'] or '—'} | "
            f"{v['validation_argmax'] * 100:.2f} | {v['score']} | {v['validation_expected'] * 100:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
